"""The serving API (DRF): registered models, versions, aliases, pull tokens and inference services.

Models and services are named as users name them: ``/api/v1/models/{team}/{name}/…`` and
``/api/v1/services/{team}/{name}/…``. Reads go through ``selectors`` (404 for whoever may not see), writes
through ``services`` (400 naming the field, 409 for a refused action). A version's files are read with a
user's token or session, or with a team's pull token (``Authorization: Bearer eam_…``), read-only.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import zipfile

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse, Http404, StreamingHttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication, SessionAuthentication, get_authorization_header
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from easyai_site.api import JSONParser
from easyai_site.api import raise_validation as _raise_validation
from easyai_site.api import team_named as _team_of
from files.paths import PathRefused, parts_of
from files.selectors import ZipSink
from jobs.models import Job
from serving import selectors, services, traffic
from serving.models import FORMAT_CHOICES, InferenceService, ModelVersion, PullToken, RegisteredModel
from serving.store import model_store
from teams import permissions
from teams.authentication import TokenAuthentication
from teams.permissions import Action

# --- serializers ---------------------------------------------------------------------------------------------


class VersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", read_only=True)
    team = serializers.CharField(source="model.team.slug", read_only=True)
    version = serializers.IntegerField(source="number", read_only=True)
    registered_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    source_job = serializers.CharField(source="source_job_public_id", read_only=True)
    aliases = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "team", "model", "version", "format", "description", "files", "digest", "size", "metrics",
            "source_job", "source_path", "lineage", "registered_by", "created_at", "aliases",
        ]  # fmt: skip

    def get_aliases(self, version: ModelVersion) -> list[str]:
        return sorted(a.name for a in version.model.aliases.all() if a.version_id == version.pk)


class ModelSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    latest_version = serializers.SerializerMethodField()
    versions = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = [
            "team", "name", "description", "tags", "owner", "created_at", "updated_at", "latest_version", "versions",
        ]  # fmt: skip

    def get_latest_version(self, model: RegisteredModel) -> int | None:
        found = [v.number for v in model.versions.all()]
        return max(found) if found else None

    def get_versions(self, model: RegisteredModel) -> int:
        return getattr(model, "version_count", None) or len(model.versions.all())


class ModelDetailSerializer(ModelSerializer):
    aliases = serializers.SerializerMethodField()
    alias_history = serializers.SerializerMethodField()
    version_list = serializers.SerializerMethodField()

    class Meta(ModelSerializer.Meta):
        fields = [*ModelSerializer.Meta.fields, "aliases", "alias_history", "version_list"]

    def get_aliases(self, model: RegisteredModel) -> dict[str, int]:
        return {a.name: a.version.number for a in model.aliases.all()}

    def get_alias_history(self, model: RegisteredModel) -> list[dict]:
        return [
            {
                "alias": m.alias,
                "from": m.from_number,
                "to": m.to_number,
                "by": m.moved_by.username if m.moved_by else None,
                "at": m.moved_at,
            }
            for m in model.alias_moves.all()
        ]

    def get_version_list(self, model: RegisteredModel) -> list[dict]:
        return VersionSerializer(model.versions.all(), many=True).data


class ModelCreateSerializer(serializers.Serializer):
    team = serializers.CharField(required=False, allow_blank=True, help_text="team slug; default: your current team")
    name = serializers.CharField(max_length=63)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    tags = serializers.DictField(child=serializers.CharField(max_length=500), required=False, default=dict)


class ModelUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    tags = serializers.DictField(child=serializers.CharField(max_length=500), required=False)


class RegisterSerializer(serializers.Serializer):
    job = serializers.CharField(required=False, help_text="register a job's folder: its id, e.g. j-3k9x2m4q")
    path = serializers.CharField(required=False, default="model_dir", help_text="model_dir, or a folder below it")
    archive = serializers.FileField(required=False, help_text="or push files: a zip archive of the model's folder")
    format = serializers.CharField(help_text=", ".join(name for name, _label in FORMAT_CHOICES))
    metrics = serializers.JSONField(required=False, help_text="names to numbers; a metrics.json beside the model too")
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class AliasSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, max_value=999_999_999)


class PullTokenSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = PullToken
        fields = ["id", "team", "name", "hint", "created_by", "created_at", "last_used_at", "revoked_at"]


class PullTokenCreateSerializer(serializers.Serializer):
    team = serializers.CharField(required=False, allow_blank=True)
    name = serializers.CharField(max_length=100)


class RevisionSerializer(serializers.Serializer):
    revision = serializers.IntegerField(source="number")
    version = serializers.IntegerField(source="version.number")
    state = serializers.CharField()
    job = serializers.SerializerMethodField()
    message = serializers.CharField()
    created_at = serializers.DateTimeField()
    ready_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)

    def get_job(self, revision) -> str | None:
        return revision.job.public_id if revision.job_id else None


def traffic_split(service: InferenceService) -> list[dict]:
    """Which revisions take the calls now, and their shares."""
    split = []
    primary, canary = service.primary, service.canary
    canary_ready = canary is not None and canary.state == "ready"
    if primary is not None:
        share = 100 - service.canary_percent if canary_ready else 100
        split.append({"revision": primary.number, "version": primary.version.number, "percent": share, "role": "primary"})
    if canary_ready:
        share = service.canary_percent if primary is not None else 100
        split.append({"revision": canary.number, "version": canary.version.number, "percent": share, "role": "canary"})
    return split


class ServiceSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)
    model = serializers.CharField(source="model.name", read_only=True)
    version = serializers.SerializerMethodField()
    canary_version = serializers.SerializerMethodField()
    state = serializers.CharField(read_only=True)
    url = serializers.CharField(read_only=True)
    traffic = serializers.SerializerMethodField()
    mean_latency_ms = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = InferenceService
        fields = [
            "team", "name", "owner", "cluster", "model", "version", "alias", "canary_version", "canary_percent",
            "cpu", "memory", "gpu", "min_replicas", "max_replicas", "public", "state", "message", "url",
            "traffic", "requests", "errors", "mean_latency_ms", "created_at",
        ]  # fmt: skip

    def get_version(self, service: InferenceService) -> int | None:
        """The version it is set to serve (the alias's, when it follows one)."""
        if service.alias:
            if hasattr(service, "alias_version"):  # read with the row (selectors.services_visible)
                return service.alias_version
            version = services.target_version(service)
            return version.number if version else None
        return service.version.number if service.version else None

    def get_canary_version(self, service: InferenceService) -> int | None:
        return service.canary_version.number if service.canary_version_id else None

    def get_traffic(self, service: InferenceService) -> list[dict]:
        return traffic_split(service)


class ServiceDetailSerializer(ServiceSerializer):
    revisions = serializers.SerializerMethodField()
    grpc = serializers.SerializerMethodField()

    class Meta(ServiceSerializer.Meta):
        fields = [*ServiceSerializer.Meta.fields, "revisions", "grpc"]

    def get_revisions(self, service: InferenceService) -> list[dict]:
        return RevisionSerializer(service.revisions.all(), many=True).data

    def get_grpc(self, service: InferenceService) -> dict:
        return grpc_of(service)


def grpc_of(service: InferenceService) -> dict:
    """Where the V2 gRPC protocol answers: locally the serving revision's port on the host, on Kubernetes the
    InferenceService's own route."""
    if service.cluster.kind == "local":
        revision = service.primary
        address = ""
        if revision is not None and revision.job_id:
            task = next((t for t in revision.job.tasks.all()), None)
            address = (task.endpoints or {}).get("grpc", "") if task else ""
        return {
            "address": address,
            "note": _("On the portal's host only: the model server's gRPC port of the serving revision."),
        }
    address = service.grpc_address.split("://", 1)[-1].rstrip("/")
    return {"address": address, "note": _("The InferenceService's own gRPC route (KServe).")}


class ServiceCreateSerializer(serializers.Serializer):
    team = serializers.CharField(required=False, allow_blank=True)
    name = serializers.CharField(max_length=45)
    model = serializers.CharField(max_length=63)
    version = serializers.IntegerField(required=False, min_value=1, max_value=999_999_999)
    alias = serializers.CharField(required=False, allow_blank=True, default="", max_length=63)
    cluster = serializers.CharField(required=False, allow_blank=True, default="")
    cpu = serializers.CharField(required=False, default="1", max_length=32)
    memory = serializers.CharField(required=False, default="2Gi", max_length=32)
    gpu = serializers.IntegerField(required=False, default=0, min_value=0, max_value=64)
    min_replicas = serializers.IntegerField(required=False, default=1, min_value=0, max_value=services.MAX_REPLICAS)
    max_replicas = serializers.IntegerField(required=False, default=1, min_value=1, max_value=services.MAX_REPLICAS)
    public = serializers.BooleanField(required=False, default=False)


class ServiceUpdateSerializer(serializers.Serializer):
    version = serializers.IntegerField(required=False, min_value=1, max_value=999_999_999)
    alias = serializers.CharField(required=False, allow_blank=True, max_length=63)
    cpu = serializers.CharField(required=False, max_length=32)
    memory = serializers.CharField(required=False, max_length=32)
    gpu = serializers.IntegerField(required=False, min_value=0, max_value=64)
    min_replicas = serializers.IntegerField(required=False, min_value=0, max_value=services.MAX_REPLICAS)
    max_replicas = serializers.IntegerField(required=False, min_value=1, max_value=services.MAX_REPLICAS)
    public = serializers.BooleanField(required=False)


class CanarySerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, max_value=999_999_999)
    percent = serializers.IntegerField(min_value=0, max_value=100, help_text="the canary's share of the calls, 0-100")


class TrySerializer(serializers.Serializer):
    protocol = serializers.ChoiceField(choices=["v1", "v2"], default="v1")
    body = serializers.JSONField(help_text='V1: {"instances": [...]}; V2: {"inputs": [...]}')


# --- pull tokens as a credential for reading files ----------------------------------------------------------


class PullTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer eam_…`` (or ``Token eam_…``): a team's pull token, for reading its models only."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() not in (b"bearer", b"token"):
            return None
        key = parts[1].decode("latin-1")
        if not key.startswith(PullToken.PREFIX):
            return None
        team = services.pull_token_team(key)
        if team is None:
            from rest_framework.exceptions import AuthenticationFailed

            raise AuthenticationFailed(_("Invalid or revoked pull token."))
        return AnonymousUser(), team

    def authenticate_header(self, request):
        return "Bearer"


class PullTokenScheme(OpenApiAuthenticationExtension):
    """The pull token in the OpenAPI schema: a bearer token that reads one team's model files."""

    target_class = "serving.api.PullTokenAuthentication"
    name = "pullToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A team's pull token (eam_…): its models' files"}


class UserOrPullToken(BasePermission):
    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated) or request.auth is not None


def _readable_version(request, team: str, name: str, number: int) -> ModelVersion:
    """A version the caller may read: by a user who may see the model, or a pull token of the model's team."""
    queryset = ModelVersion.objects.select_related("model__team").filter(
        model__team__slug=team, model__name=name, number=number
    )
    version = queryset.first()
    if request.user.is_authenticated:
        if version is None or not permissions.can(request.user, version.model, Action.VIEW):
            raise Http404(_("Not found."))
    elif version is None or getattr(request.auth, "pk", None) != version.model.team_id:
        raise Http404(_("Not found."))
    return version


# --- views -----------------------------------------------------------------------------------------------------


class _Base(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def model(self, team: str, name: str, action: Action = Action.VIEW) -> RegisteredModel:
        model = selectors.model_detail(self.request.user, team, name)
        if model is None:
            raise Http404(_("Not found."))
        if action != Action.VIEW and not permissions.can(self.request.user, model, action):
            raise services.ServingActionRefused(_("Only the owner or a team admin may do this."))
        return model

    def service(self, team: str, name: str) -> InferenceService:
        service = selectors.service_detail(self.request.user, team, name)
        if service is None:
            raise Http404(_("Not found."))
        return service

    def act(self, serializer_class, act, *, in_team: bool = False, **known):
        """The body checked by ``serializer_class``, then ``act`` called with it (a service's field errors are
        400); ``in_team``: the body's ``team`` (default: the current team) is resolved and passed."""
        data = serializer_class(data=self.request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        if in_team:
            known["team"] = _team_of(self.request, fields.pop("team", ""))
        try:
            return act(user=self.request.user, **known, **fields)
        except DjangoValidationError as exc:
            _raise_validation(exc)


def _in_team(request, queryset):
    """A list, narrowed to one team with ``?team=``."""
    team = request.query_params.get("team")
    return queryset.filter(team__slug=team) if team else queryset


class ModelListView(_Base):
    @extend_schema(
        parameters=[OpenApiParameter("team", str, description="only this team's models")],
        responses=ModelSerializer(many=True),
    )
    def get(self, request):
        queryset = _in_team(request, selectors.models_visible(request.user).prefetch_related("versions"))
        return Response(ModelSerializer(queryset, many=True).data)

    @extend_schema(request=ModelCreateSerializer, responses={201: ModelDetailSerializer})
    def post(self, request):
        model = self.act(ModelCreateSerializer, services.model_create, in_team=True)
        fresh = self.model(model.team.slug, model.name)
        return Response(ModelDetailSerializer(fresh).data, status=status.HTTP_201_CREATED)


class ModelDetailView(_Base):
    @extend_schema(responses=ModelDetailSerializer)
    def get(self, request, team, name):
        return Response(ModelDetailSerializer(self.model(team, name)).data)

    @extend_schema(request=ModelUpdateSerializer, responses=ModelDetailSerializer)
    def patch(self, request, team, name):
        self.act(ModelUpdateSerializer, services.model_update, model=self.model(team, name))
        return Response(ModelDetailSerializer(self.model(team, name)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, team, name):
        services.model_delete(user=request.user, model=self.model(team, name))
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionListView(_Base):
    @extend_schema(responses=VersionSerializer(many=True))
    def get(self, request, team, name):
        return Response(VersionSerializer(self.model(team, name).versions.all(), many=True).data)

    @extend_schema(
        request={"application/json": RegisterSerializer, "multipart/form-data": RegisterSerializer},
        responses={201: VersionSerializer},
        description="Register the next version: from a job's folder (job, path) or from pushed files (archive).",
    )
    def post(self, request, team, name):
        data = RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        owner_team = _team_of(request, team)
        common = {
            "user": request.user,
            "name": name,
            "model_format": fields["format"],
            "metrics": fields.get("metrics"),
            "description": fields.get("description", ""),
        }
        try:
            if fields.get("archive") is not None:
                version = services.version_push(team=owner_team, archive=fields["archive"], **common)
            elif fields.get("job"):
                job = (
                    permissions.restrict(Job.objects.select_related("team", "owner", "experiment"), request.user)
                    .filter(public_id=fields["job"], team=owner_team)
                    .first()
                )
                if job is None:
                    raise DjangoValidationError({"job": [_("No job %(id)s in this team.") % {"id": fields["job"]}]})
                version = services.version_register(job=job, path=fields.get("path"), **common)
            else:
                raise DjangoValidationError({"job": [_("Name a job (job, path) or send an archive.")]})
        except DjangoValidationError as exc:
            _raise_validation(exc)
        fresh = ModelVersion.objects.select_related("model__team", "registered_by").get(pk=version.pk)
        return Response(VersionSerializer(fresh).data, status=status.HTTP_201_CREATED)


class VersionDetailView(_Base):
    def _version(self, team, name, number) -> ModelVersion:
        model = self.model(team, name)
        version = next((v for v in model.versions.all() if v.number == int(number)), None)
        if version is None:
            raise Http404(_("Not found."))
        return version

    @extend_schema(responses=VersionSerializer)
    def get(self, request, team, name, number):
        return Response(VersionSerializer(self._version(team, name, number)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, team, name, number):
        services.version_delete(user=request.user, version=self._version(team, name, number))
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionFileView(APIView):
    authentication_classes = [PullTokenAuthentication, TokenAuthentication, SessionAuthentication]
    permission_classes = [UserOrPullToken]

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request, team, name, number, path):
        version = _readable_version(request, team, name, number)
        try:
            relative = "/".join(parts_of(path))
        except PathRefused:
            raise Http404(_("Not found.")) from None
        if relative not in {f["path"] for f in version.files}:
            raise Http404(_("Not found."))
        try:
            handle = model_store().open(f"{version.prefix}/{relative}")
        except FileNotFoundError:
            raise Http404(_("The file is missing from the model store.")) from None
        return FileResponse(handle, as_attachment=True, filename=relative.rsplit("/", 1)[-1])


def _zip_of(version: ModelVersion):
    sink = ZipSink()  # the files app's: bytes taken as zipfile writes them
    store = model_store()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry in version.files:
            with store.open(f"{version.prefix}/{entry['path']}") as source, archive.open(entry["path"], "w", force_zip64=True) as target:
                while chunk := source.read(1024 * 1024):
                    target.write(chunk)
                    yield sink.take()
    yield sink.take()


class VersionDownloadView(APIView):
    authentication_classes = [PullTokenAuthentication, TokenAuthentication, SessionAuthentication]
    permission_classes = [UserOrPullToken]

    @extend_schema(responses={(200, "application/zip"): bytes})
    def get(self, request, team, name, number):
        version = _readable_version(request, team, name, number)
        response = StreamingHttpResponse(_zip_of(version), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{name}-{number}.zip"'
        return response


class AliasView(_Base):
    @extend_schema(request=AliasSerializer, responses=ModelDetailSerializer)
    def put(self, request, team, name, alias):
        model = self.model(team, name, Action.CHANGE)
        data = AliasSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.alias_set(user=request.user, model=model, alias=alias, number=data.validated_data["version"])
        except DjangoValidationError as exc:
            _raise_validation(exc)
        return Response(ModelDetailSerializer(self.model(team, name)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, team, name, alias):
        model = self.model(team, name, Action.CHANGE)
        try:
            services.alias_delete(user=request.user, model=model, alias=alias)
        except DjangoValidationError as exc:
            if "alias" in getattr(exc, "message_dict", {}):
                raise Http404(exc.message_dict["alias"][0]) from None
            _raise_validation(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PullTokenListView(_Base):
    @extend_schema(responses=PullTokenSerializer(many=True))
    def get(self, request):
        return Response(PullTokenSerializer(selectors.pull_tokens_visible(request.user), many=True).data)

    @extend_schema(
        request=PullTokenCreateSerializer,
        responses={201: inline_serializer("PullTokenMade", {"token": serializers.CharField(), "id": serializers.IntegerField()})},
    )
    def post(self, request):
        data = PullTokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        team = _team_of(request, data.validated_data.get("team"))
        try:
            token, key = services.pull_token_create(user=request.user, team=team, name=data.validated_data["name"])
        except DjangoValidationError as exc:
            _raise_validation(exc)
        body = {**PullTokenSerializer(token).data, "token": key}
        return Response(body, status=status.HTTP_201_CREATED)


class PullTokenRevokeView(_Base):
    @extend_schema(request=None, responses=PullTokenSerializer)
    def post(self, request, pk):
        token = selectors.pull_tokens_visible(request.user).filter(pk=pk).first()
        if token is None:
            raise Http404(_("Not found."))
        return Response(PullTokenSerializer(services.pull_token_revoke(user=request.user, token=token)).data)


class ServiceListView(_Base):
    @extend_schema(
        parameters=[OpenApiParameter("team", str, description="only this team's services")],
        responses=ServiceSerializer(many=True),
    )
    def get(self, request):
        return Response(ServiceSerializer(_in_team(request, selectors.services_visible(request.user)), many=True).data)

    @extend_schema(request=ServiceCreateSerializer, responses={201: ServiceDetailSerializer})
    def post(self, request):
        service = self.act(ServiceCreateSerializer, services.service_create, in_team=True)
        fresh = self.service(service.team.slug, service.name)
        return Response(ServiceDetailSerializer(fresh).data, status=status.HTTP_201_CREATED)


class ServiceDetailView(_Base):
    @extend_schema(responses=ServiceDetailSerializer)
    def get(self, request, team, name):
        return Response(ServiceDetailSerializer(self.service(team, name)).data)

    @extend_schema(request=ServiceUpdateSerializer, responses=ServiceDetailSerializer)
    def patch(self, request, team, name):
        self.act(ServiceUpdateSerializer, services.service_update, service=self.service(team, name))
        return Response(ServiceDetailSerializer(self.service(team, name)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, team, name):
        services.service_delete(user=request.user, service=self.service(team, name))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ServiceCanaryView(_Base):
    @extend_schema(request=CanarySerializer, responses=ServiceDetailSerializer)
    def post(self, request, team, name):
        self.act(CanarySerializer, services.service_canary, service=self.service(team, name))
        return Response(ServiceDetailSerializer(self.service(team, name)).data)


class ServicePromoteView(_Base):
    @extend_schema(request=None, responses=ServiceDetailSerializer)
    def post(self, request, team, name):
        services.service_promote(user=request.user, service=self.service(team, name))
        return Response(ServiceDetailSerializer(self.service(team, name)).data)


class ServiceRollbackView(_Base):
    @extend_schema(request=None, responses=ServiceDetailSerializer)
    def post(self, request, team, name):
        services.service_rollback(user=request.user, service=self.service(team, name))
        return Response(ServiceDetailSerializer(self.service(team, name)).data)


def try_call(user, service: InferenceService, protocol: str, body) -> dict:
    """One call through the service's route, as the serving URL would make it: (status, body, revision, ms)."""
    route = traffic.route_for(user, service.team.slug, service.name)
    upstream = route.choose()
    path = f"/v1/models/{service.name}:predict" if protocol == "v1" else f"/v2/models/{service.name}/infer"
    request = urllib.request.Request(
        upstream.base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **({"Host": upstream.host} if upstream.host else {})},
        method="POST",
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            code, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        code, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        code, raw = 502, json.dumps({"error": f"The model server did not answer: {exc}"}).encode()
    elapsed = (time.perf_counter() - started) * 1000
    services.service_stats(service.pk, 1, 1 if code >= 500 else 0, elapsed)
    try:
        answer = json.loads(raw or b"null")
    except ValueError:
        answer = raw.decode(errors="replace")
    return {"status": code, "body": answer, "revision": upstream.revision, "latency_ms": round(elapsed, 2)}


class ServiceTryView(_Base):
    @extend_schema(
        request=TrySerializer,
        responses=inline_serializer(
            "TryAnswer",
            {
                "status": serializers.IntegerField(),
                "body": serializers.JSONField(),
                "revision": serializers.IntegerField(),
                "latency_ms": serializers.FloatField(),
            },
        ),
        description="Call the service once, as its URL would, with your session or token (the page's Try it).",
    )
    def post(self, request, team, name):
        service = self.service(team, name)
        data = TrySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            result = try_call(request.user, service, data.validated_data["protocol"], data.validated_data["body"])
        except traffic.Refused as refused:
            return Response({"detail": refused.message}, status=refused.status)
        return Response(result)

