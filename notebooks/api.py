"""The notebooks API (DRF): notebooks and TensorBoards, through the permission module and the services."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from easyai_site.api import raise_validation as _raise_validation
from endpoints import origin as endpoint_origin
from notebooks import selectors, services
from notebooks.models import NOTEBOOK_TASK, TENSORBOARD_TASK, Notebook, TensorBoard
from teams import permissions
from teams.models import MAX_LEASE_HOURS
from teams.permissions import Action

# The API's bounds: past MAX_LEASE_HOURS a lease's end is not a date (a lease of 2**31 hours overflowed), and
# an id past 18 digits is no row's (the router answers 404 without asking the database).
MAX_GPU = 2**31 - 1
ID_PATTERN = "[0-9]{1,18}"



class NotebookSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)
    job = serializers.SlugRelatedField(slug_field="public_id", read_only=True, allow_null=True)
    state = serializers.CharField(read_only=True)
    reason = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    can_open = serializers.SerializerMethodField()

    class Meta:
        model = Notebook
        fields = [
            "id", "name", "team", "owner", "cluster", "kind", "image", "cpu", "memory", "gpu", "lease_hours",
            "expires_at", "last_activity_at", "state", "reason", "job", "url", "can_open", "created_at",
        ]  # fmt: skip

    def get_reason(self, notebook: Notebook) -> str:
        """Why the last run ended (``lease_expired``, ``idle``, ``stopped``...), "" while it runs."""
        return notebook.job.reason if notebook.job is not None and notebook.state == "stopped" else ""

    def get_url(self, notebook: Notebook) -> str | None:
        """The notebook's page on the endpoint origin (a browser signs in there through the portal, a script
        sends its token): only its owner may open it."""
        if not notebook.path:
            return None
        return endpoint_origin.endpoint_url(
            notebook.job.public_id, NOTEBOOK_TASK, notebook.endpoint_name, notebook.path
        )

    def get_can_open(self, notebook: Notebook) -> bool:
        request = self.context.get("request")
        return bool(request and selectors.can_open_notebook(request.user, notebook))


class NotebookCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=40)
    team = serializers.CharField(required=False, allow_blank=True, help_text="team slug; default: your current team")
    kind = serializers.CharField(required=False, default=Notebook.Kind.JUPYTERLAB, help_text="jupyterlab or vscode")
    cluster = serializers.CharField(required=False, allow_blank=True, help_text="cluster name; default: the default")
    image = serializers.CharField(required=False, allow_blank=True, default="")
    cpu = serializers.CharField(required=False, default="2")
    memory = serializers.CharField(required=False, default="4Gi")
    gpu = serializers.IntegerField(required=False, default=0, min_value=0, max_value=MAX_GPU)
    lease_hours = serializers.IntegerField(
        required=False, default=services.DEFAULT_LEASE_HOURS, min_value=1, max_value=MAX_LEASE_HOURS
    )


class RenewSerializer(serializers.Serializer):
    lease_hours = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_LEASE_HOURS,
        help_text="hours from now; default: the notebook's lease",
    )


class NotebookViewSet(viewsets.GenericViewSet):
    """Notebook servers (JupyterLab, VS Code): create, list, open (``url``), stop, start, renew, delete."""

    serializer_class = NotebookSerializer
    lookup_value_regex = ID_PATTERN

    def get_queryset(self):
        queryset = selectors.notebooks_visible(self.request.user)
        team = self.request.query_params.get("team")
        if team:
            queryset = queryset.filter(team__slug=team)
        return queryset

    def _get(self, action: Action = Action.VIEW) -> Notebook:
        return permissions.get_or_404(
            selectors.notebooks_visible(self.request.user), self.request.user, action, pk=self.kwargs["pk"]
        )

    def _owned(self) -> Notebook:
        notebook = self._get()
        if not selectors.can_open_notebook(self.request.user, notebook):
            raise PermissionDenied(_("Only the notebook's owner may start or renew it."))
        return notebook

    def _detail(self, notebook: Notebook, code: int = status.HTTP_200_OK) -> Response:
        fresh = selectors.notebooks_visible(self.request.user).get(pk=notebook.pk)
        return Response(NotebookSerializer(fresh, context={"request": self.request}).data, status=code)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(NotebookSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(request=NotebookCreateSerializer, responses={201: NotebookSerializer})
    def create(self, request):
        data = NotebookCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        slug = fields.pop("team", "")
        if slug:
            team = permissions.visible_teams(request.user).filter(slug=slug).first()
            if team is None:
                raise ValidationError({"team": [f"No team {slug!r} that you belong to."]})
        else:
            team = request.team
        try:
            notebook = services.notebook_create(user=request.user, team=team, **fields)
        except DjangoValidationError as exc:
            _raise_validation(exc)
        response = self._detail(notebook, status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/notebooks/{notebook.pk}/"
        return response

    @extend_schema(responses=NotebookSerializer)
    def retrieve(self, request, pk=None):
        return Response(NotebookSerializer(self._get(), context={"request": request}).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        services.notebook_delete(notebook=self._get(Action.CHANGE), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=NotebookSerializer)
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        notebook = self._get(Action.CHANGE)
        services.notebook_stop(notebook=notebook, actor=request.user)  # refused: 409 from the exception handler
        return self._detail(notebook)

    @extend_schema(request=None, responses=NotebookSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        notebook = self._owned()
        try:
            services.notebook_start(notebook=notebook, user=request.user)
        except DjangoValidationError as exc:
            _raise_validation(exc)
        return self._detail(notebook)

    @extend_schema(request=RenewSerializer, responses=NotebookSerializer)
    @action(detail=True, methods=["post"])
    def renew(self, request, pk=None):
        notebook = self._owned()
        data = RenewSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.notebook_renew(notebook=notebook, hours=data.validated_data.get("lease_hours"))
        except DjangoValidationError as exc:
            _raise_validation(exc)
        return self._detail(notebook)


# --- TensorBoard -----------------------------------------------------------------------------------


class TensorBoardSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    job = serializers.SlugRelatedField(slug_field="public_id", read_only=True)
    jobs = serializers.SlugRelatedField(source="sources", slug_field="public_id", many=True, read_only=True)
    state = serializers.CharField(source="job.state", read_only=True, help_text="its job's state")
    ready = serializers.BooleanField(
        read_only=True, help_text="true once TensorBoard answers at its url (its job may run before)"
    )
    url = serializers.SerializerMethodField()

    class Meta:
        model = TensorBoard
        fields = ["id", "team", "owner", "job", "jobs", "state", "ready", "url", "created_at"]

    def get_url(self, board: TensorBoard) -> str:
        """Its page on the endpoint origin (a browser signs in there through the portal, a script sends its token)."""
        return endpoint_origin.endpoint_url(board.job.public_id, TENSORBOARD_TASK, "tensorboard", board.path)


class TensorBoardOpenSerializer(serializers.Serializer):
    jobs = serializers.ListField(
        child=serializers.CharField(max_length=100), min_length=1, max_length=100, help_text="job ids to compare"
    )


class TensorBoardViewSet(viewsets.GenericViewSet):
    """TensorBoard over one job's summaries, or several jobs' to compare them; reused while it runs."""

    serializer_class = TensorBoardSerializer
    lookup_value_regex = ID_PATTERN

    def get_queryset(self):
        return selectors.tensorboards_visible(self.request.user)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(TensorBoardSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(responses=TensorBoardSerializer)
    def retrieve(self, request, pk=None):
        board = permissions.get_or_404(self.get_queryset(), request.user, Action.VIEW, pk=pk)
        return Response(TensorBoardSerializer(board, context={"request": request}).data)

    @extend_schema(
        request=TensorBoardOpenSerializer, responses={201: TensorBoardSerializer, 200: TensorBoardSerializer}
    )
    def create(self, request):
        data = TensorBoardOpenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            board, created = services.tensorboard_open(user=request.user, job_ids=data.validated_data["jobs"])
        except DjangoValidationError as exc:
            _raise_validation(exc)
        board = self.get_queryset().get(pk=board.pk)
        return Response(
            TensorBoardSerializer(board, context={"request": request}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
