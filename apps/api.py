"""The apps API (DRF): ``/api/v1/apps/…``, through the permission module and the services.

An app is named by its team and name (``/api/v1/apps/{team}/{name}/``), as its address is. Creating one
publishes its first revision: from a folder of the caller's personal workspace (``source``, JSON) or from a
zip archive of a folder (``archive``, multipart, as ``easyai app deploy DIR`` sends it); its environment, secrets
and the users it is shared with are then JSON mappings or lists (in a multipart body, JSON text). Secrets are
write-only: an answer names them, never their values.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps import selectors, services
from apps.models import App, AppKind, AppRevision, Visibility
from easyai_site.api import JSONParser
from easyai_site.api import raise_validation as _raise_validation
from easyai_site.api import team_named as _team_of
from teams import permissions
from teams.permissions import Action


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONValue(serializers.Field):
    """A mapping or a list as JSON, or as JSON text (a multipart body's field)."""

    def __init__(self, *, kind: type, **kwargs: Any) -> None:
        self.kind = kind
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            try:
                data = json.loads(data) if data.strip() else self.kind()
            except ValueError:
                raise ValidationError(_("Not valid JSON.")) from None
        if not isinstance(data, self.kind):
            raise ValidationError(_("Must be a JSON %(kind)s.") % {"kind": "object" if self.kind is dict else "list"})
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class RevisionSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    file_count = serializers.SerializerMethodField()

    class Meta:
        model = AppRevision
        fields = ["number", "kind", "entry", "command", "source", "size", "digest", "file_count", "created_by", "created_at"]

    def get_file_count(self, revision: AppRevision) -> int:
        return len(revision.files)


class AppSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)
    job = serializers.SlugRelatedField(slug_field="public_id", read_only=True, allow_null=True)
    state = serializers.CharField(read_only=True)
    url = serializers.CharField(read_only=True)
    revision = serializers.SerializerMethodField()
    entry = serializers.SerializerMethodField()
    secrets = serializers.SerializerMethodField(help_text="the secrets' names; their values are never shown")
    shared_with = serializers.SerializerMethodField()
    can_change = serializers.SerializerMethodField()

    class Meta:
        model = App
        fields = [
            "team", "name", "owner", "cluster", "kind", "description", "url", "state", "status", "message",
            "revision", "entry", "cpu", "memory", "gpu", "image", "env", "secrets", "visibility", "shared_with",
            "idle_minutes", "job", "last_request_at", "run_requested_at", "startup_seconds", "created_at",
            "updated_at", "can_change",
        ]  # fmt: skip

    def get_revision(self, app: App) -> int | None:
        return app.revision.number if app.revision else None

    def get_entry(self, app: App) -> str:
        return app.revision.entry if app.revision else ""

    def get_secrets(self, app: App) -> list[str]:
        return app.secret_names

    def get_shared_with(self, app: App) -> list[str]:
        return sorted(user.username for user in app.shared_with.all())

    def get_can_change(self, app: App) -> bool:
        request = self.context.get("request")
        return bool(request) and permissions.can(request.user, app, Action.CHANGE)


class AppDetailSerializer(AppSerializer):
    revisions = RevisionSerializer(many=True, read_only=True)

    class Meta(AppSerializer.Meta):
        fields = [*AppSerializer.Meta.fields, "revisions"]


class _Code(serializers.Serializer):
    kind = serializers.ChoiceField(choices=AppKind.choices, required=False, help_text="a new revision may change it")
    source = serializers.CharField(required=False, allow_blank=True, help_text="a folder of your personal workspace")
    archive = serializers.FileField(required=False, help_text="or a zip archive of the app's folder")
    entry = serializers.CharField(required=False, allow_blank=True, help_text="the entry file, such as app.py")
    command = serializers.CharField(required=False, allow_blank=True, help_text="a custom app's command")


class AppCreateSerializer(_Code):
    team = serializers.CharField(required=False, allow_blank=True, help_text="default: your current team")
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=AppKind.choices)
    description = serializers.CharField(required=False, allow_blank=True)
    cluster = serializers.CharField(required=False, allow_blank=True)
    cpu = serializers.CharField(required=False, default="1")
    memory = serializers.CharField(required=False, default="2Gi")
    gpu = serializers.IntegerField(required=False, default=0, min_value=0, max_value=1024)
    image = serializers.CharField(required=False, allow_blank=True, default="")
    env = JSONValue(kind=dict, required=False)
    secrets = JSONValue(kind=dict, required=False, write_only=True)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False, default=Visibility.TEAM)
    shared_with = JSONValue(kind=list, required=False)
    idle_minutes = serializers.IntegerField(required=False, min_value=0, max_value=10_080)


class AppUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True)
    cpu = serializers.CharField(required=False)
    memory = serializers.CharField(required=False)
    gpu = serializers.IntegerField(required=False, min_value=0, max_value=1024)
    image = serializers.CharField(required=False, allow_blank=True)
    env = JSONValue(kind=dict, required=False)
    secrets = JSONValue(kind=dict, required=False, write_only=True, help_text="set these secrets (others kept)")
    unset_secrets = JSONValue(kind=list, required=False, help_text="names of secrets to remove")
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)
    shared_with = JSONValue(kind=list, required=False)
    idle_minutes = serializers.IntegerField(required=False, min_value=0, max_value=10_080)



class _Base(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def app(self, team: str, name: str) -> App:
        app = selectors.app_detail(self.request.user, team, name)
        if app is None:
            raise Http404(_("Not found."))
        return app

    def fields(self, serializer_class) -> dict:
        data = serializer_class(data=self.request.data)
        data.is_valid(raise_exception=True)
        return dict(data.validated_data)

    def answer(self, team: str, name: str, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.app(team, name)
        return Response(AppDetailSerializer(fresh, context={"request": self.request}).data, status=code)


def _archive(fields: dict) -> Any:
    upload = fields.pop("archive", None)
    return upload if upload is None else upload.file


class AppListView(_Base):
    @extend_schema(
        parameters=[OpenApiParameter("team", str, description="only this team's apps")],
        responses=AppSerializer(many=True),
    )
    def get(self, request):
        queryset = selectors.apps_visible(request.user).prefetch_related("shared_with")
        team = request.query_params.get("team")
        if team:
            queryset = queryset.filter(team__slug=team)
        return Response(AppSerializer(queryset, many=True, context={"request": request}).data)

    @extend_schema(request=AppCreateSerializer, responses={201: AppDetailSerializer})
    def post(self, request):
        fields = self.fields(AppCreateSerializer)
        team = _team_of(request, fields.pop("team", ""))
        archive = _archive(fields)
        try:
            app = services.app_deploy(user=request.user, team=team, archive=archive, **fields)
        except DjangoValidationError as exc:
            _raise_validation(exc)
        return self.answer(app.team.slug, app.name, status.HTTP_201_CREATED)


class AppDetailView(_Base):
    @extend_schema(responses=AppDetailSerializer)
    def get(self, request, team, name):
        return Response(AppDetailSerializer(self.app(team, name), context={"request": request}).data)

    @extend_schema(request=AppUpdateSerializer, responses=AppDetailSerializer)
    def patch(self, request, team, name):
        fields = self.fields(AppUpdateSerializer)
        try:
            services.app_update(user=request.user, app=self.app(team, name), **fields)
        except DjangoValidationError as exc:
            _raise_validation(exc)
        return self.answer(team, name)

    @extend_schema(responses={204: None})
    def delete(self, request, team, name):
        services.app_delete(user=request.user, app=self.app(team, name))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RevisionListView(_Base):
    @extend_schema(responses=RevisionSerializer(many=True))
    def get(self, request, team, name):
        return Response(RevisionSerializer(self.app(team, name).revisions.all(), many=True).data)

    @extend_schema(
        request=_Code,
        responses={201: AppDetailSerializer},
        description="Publish a new revision (from a workspace folder or an archive) and run it.",
    )
    def post(self, request, team, name):
        fields = self.fields(_Code)
        archive = _archive(fields)
        try:
            services.app_publish(
                user=request.user,
                app=self.app(team, name),
                source=fields.get("source"),
                archive=archive,
                entry=fields.get("entry"),
                command=fields.get("command"),
                kind=fields.get("kind"),
            )
        except DjangoValidationError as exc:
            _raise_validation(exc)
        return self.answer(team, name, status.HTTP_201_CREATED)


class AppActionView(_Base):
    act = None

    @extend_schema(request=None, responses=AppDetailSerializer)
    def post(self, request, team, name):
        type(self).act(user=request.user, app=self.app(team, name))
        return self.answer(team, name)


class AppStartView(AppActionView):
    act = services.app_start


class AppStopView(AppActionView):
    act = services.app_stop


class AppRestartView(AppActionView):
    act = services.app_restart
