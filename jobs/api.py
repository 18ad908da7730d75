"""The jobs API (DRF): experiments and jobs, through the permission module and the services."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, Q
from django.http import HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import BaseParser
from rest_framework.response import Response

from easyai_site.api import BuiltOnceFields
from easyai_site.api import raise_validation as _raise_validation
from jobs import readiness, selectors, services
from jobs import spec as job_spec
from jobs import state as job_state
from jobs.models import Experiment, Job, JobEvent, Task
from jobs.spec.toolbox import services_of
from teams import permissions
from teams.permissions import Action


class YAMLParser(BaseParser):
    """Job specs in YAML (``application/yaml``), read by the spec's own reader."""

    media_type = "application/yaml"

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return job_spec.parse(stream.read() if stream is not None else b"", self.media_type)
        except job_spec.SpecError as exc:
            raise ValidationError(exc.errors) from None


class SpecJSONParser(YAMLParser):
    """Job specs in JSON, read by the spec's reader too: the same limits (size, nesting, keys given twice,
    text UTF-8 cannot carry) and the same errors by field path as YAML."""

    media_type = "application/json"


class TextYAMLParser(YAMLParser):
    media_type = "text/yaml"


class XYAMLParser(YAMLParser):
    media_type = "application/x-yaml"


# --- serializers ---------------------------------------------------------------------


class ExperimentSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    job_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Experiment
        fields = ["id", "team", "name", "description", "owner", "created_at", "job_count"]


class ExperimentCreateSerializer(serializers.Serializer):
    team = serializers.CharField(required=False, allow_blank=True, help_text="team slug; default: your current team")
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class TaskSerializer(BuiltOnceFields, serializers.ModelSerializer):
    name = serializers.CharField(read_only=True)

    class Meta:
        model = Task
        fields = ["name", "role", "index", *Task.OBSERVED_FIELDS]


class JobEventSerializer(BuiltOnceFields, serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)
    from_state = serializers.CharField()
    to_state = serializers.CharField()

    class Meta:
        model = JobEvent
        fields = ["from_state", "to_state", "reason", "message", "actor", "created_at"]


class JobSerializer(BuiltOnceFields, serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)
    experiment = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    duration = serializers.SerializerMethodField()
    # The API's name for how often the submit to the cluster failed and was retried.
    retry_count = serializers.IntegerField(source="submit_attempts", read_only=True)
    # The state as pages show it: "failed, held for debugging" while a failed task is paused (pause_on_failure).
    state_label = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "team",
            "experiment",
            "owner",
            "cluster",
            "framework",
            "state",
            "reason",
            "message",
            "priority",
            "created_at",
            "scheduled_at",
            "started_at",
            "finished_at",
            "duration",
            "cpu_milli",
            "memory_bytes",
            "gpu",
            "attempt",
            "retry_count",
            "state_label",
            "held_mode",
            "held_until",
        ]

    def get_state_label(self, job: Job) -> str:
        return job_state.state_label(job.state, job.held_mode)

    def get_duration(self, job: Job) -> float | None:
        duration = job.duration
        return round(duration.total_seconds(), 3) if duration is not None else None


class ServiceLinkSerializer(serializers.Serializer):
    """One background service of one task (the spec's role ``services``), reached through the endpoint proxy."""

    task = serializers.CharField()
    name = serializers.CharField()
    port = serializers.IntegerField()
    health = serializers.CharField(help_text="the HTTP path its readiness is checked on; empty: none")
    ready = serializers.BooleanField(help_text="the task runs and the service answered its check")
    url = serializers.CharField(help_text="where it is reached through the endpoint proxy; empty for those who "
                                "may not open the job's endpoints")  # fmt: skip


class JobDetailSerializer(JobSerializer):
    spec = serializers.JSONField(read_only=True)
    tasks = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()
    pre_job = serializers.SlugRelatedField(slug_field="public_id", read_only=True, allow_null=True)
    rerun_of = serializers.SlugRelatedField(slug_field="public_id", read_only=True, allow_null=True)
    can_change = serializers.SerializerMethodField()
    services = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = [
            *JobSerializer.Meta.fields, "spec", "pre_job", "rerun_of", "tasks", "services", "events", "can_change",
        ]  # fmt: skip

    @extend_schema_field(ServiceLinkSerializer(many=True))
    def get_services(self, job: Job) -> list:
        tasks = getattr(job, "submitted_tasks", None)
        request = self.context.get("request")
        if not services_of(job.spec):
            return []  # most jobs: nothing to list, and no permission to ask
        user = getattr(request, "user", None)
        tasks = job.tasks.all() if tasks is None else tasks
        return readiness.service_links(job, tasks, may_open=permissions.can(user, job, Action.OPEN))

    # A job just submitted is answered from the rows made (services.job_submit): its tasks, and no events yet.
    @extend_schema_field(TaskSerializer(many=True))
    def get_tasks(self, job: Job) -> list:
        tasks = getattr(job, "submitted_tasks", None)
        return TaskSerializer(job.tasks.all() if tasks is None else tasks, many=True, context=self.context).data

    @extend_schema_field(JobEventSerializer(many=True))
    def get_events(self, job: Job) -> list:
        events = [] if hasattr(job, "submitted_tasks") else job.events.all()
        return JobEventSerializer(events, many=True, context=self.context).data

    def get_can_change(self, job: Job) -> bool:
        request = self.context.get("request")
        return bool(request and permissions.can(request.user, job, Action.CHANGE))


# --- views -------------------------------------------------------------------------


class ExperimentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Experiments group a team's jobs."""

    serializer_class = ExperimentSerializer

    def get_queryset(self):
        queryset = permissions.restrict(Experiment.objects.select_related("team", "owner"), self.request.user)
        queryset = queryset.annotate(job_count=Count("jobs", filter=Q(jobs__deleted=False)))
        team = self.request.query_params.get("team")
        if team:
            queryset = queryset.filter(team__slug=team)
        return queryset.order_by("-created_at", "-id")

    @extend_schema(request=ExperimentCreateSerializer, responses={201: ExperimentSerializer})
    def create(self, request, *args, **kwargs):
        data = ExperimentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        slug = data.validated_data.get("team")
        if slug:
            team = permissions.visible_teams(request.user).filter(slug=slug).first()
            if team is None:
                raise ValidationError({"team": [_("No team %(team)r that you belong to.") % {"team": slug}]})
        else:
            # request.team is lazy: a user in no team has a lazy None, which is falsy but not None.
            team = getattr(request, "team", None) or None
            if team is None:
                raise ValidationError({"team": [_("You are in no team: name one.")]})
        try:
            experiment = services.experiment_create(
                user=request.user,
                team=team,
                name=data.validated_data["name"],
                description=data.validated_data.get("description", ""),
            )
        except DjangoValidationError as exc:
            _raise_validation(exc)
        return Response(ExperimentSerializer(experiment).data, status=status.HTTP_201_CREATED)


JOB_FILTERS = [
    OpenApiParameter("team", str, description="team slug"),
    OpenApiParameter("experiment", str, description="experiment name or id"),
    OpenApiParameter("owner", str, description="owner's username"),
    OpenApiParameter("state", str, description="a state, or several separated by commas"),
    OpenApiParameter("framework", str),
    OpenApiParameter("cluster", str, description="cluster name"),
    OpenApiParameter("q", str, description="part of the job's name or id"),
    OpenApiParameter("ordering", str, description="created_at, -created_at (default), name, -name, state, -state"),
]


class JobViewSet(viewsets.GenericViewSet):
    """Training jobs: submit (JSON or YAML spec), list, inspect, stop, rerun, delete."""

    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = "j-[a-z0-9]{8}"
    parser_classes = [SpecJSONParser, YAMLParser, TextYAMLParser, XYAMLParser]
    serializer_class = JobSerializer

    def get_queryset(self):
        return selectors.jobs_visible(self.request.user)

    def _get_job(self, action: Action = Action.VIEW) -> Job:
        return permissions.get_or_404(
            selectors.jobs_visible(self.request.user, detail=True),
            self.request.user,
            action,
            public_id=self.kwargs["id"],
        )

    @extend_schema(parameters=JOB_FILTERS, responses=JobSerializer(many=True))
    def list(self, request):
        try:
            queryset = selectors.jobs_filtered(self.get_queryset(), request.query_params)
        except ValueError as exc:
            raise ValidationError({"ordering": [str(exc)]}) from None
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(JobSerializer(page, many=True).data)

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT, "application/yaml": OpenApiTypes.STR},
        parameters=[OpenApiParameter("dry_run", bool, description="validate and show what would be submitted")],
        responses={201: JobDetailSerializer, 200: OpenApiTypes.OBJECT},
    )
    def create(self, request):
        dry_run = request.query_params.get("dry_run", "").lower() in {"1", "true", "yes"}
        try:
            if dry_run:
                result = services.job_dry_run(user=request.user, data=request.data)
                return Response(
                    {"spec": result.spec, "description": result.description.to_dict(), "manifests": result.rendered}
                )
            job = services.job_submit(user=request.user, data=request.data)
        except DjangoValidationError as exc:
            _raise_validation(exc)
        # Answered from the rows just written (the job, its tasks, no events yet): nothing is read back.
        return Response(
            JobDetailSerializer(job, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/jobs/{job.public_id}/"},
        )

    @extend_schema(responses=JobDetailSerializer)
    def retrieve(self, request, id=None):
        return Response(JobDetailSerializer(self._get_job(), context={"request": request}).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, id=None):
        services.job_delete(job=self._get_job(Action.CHANGE), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=JobDetailSerializer)
    @action(detail=True, methods=["post"])
    def stop(self, request, id=None):
        job = self._get_job(Action.CHANGE)
        services.job_stop(job=job, actor=request.user)  # refused: 409 from the API's exception handler
        job = selectors.jobs_visible(request.user, detail=True).get(pk=job.pk)
        return Response(JobDetailSerializer(job, context={"request": request}).data)

    @extend_schema(
        request=None,
        responses={200: JobDetailSerializer, 409: OpenApiTypes.OBJECT},
        description="End the hold of the job's failed task now (the spec's debug.keep_failed or "
        "debug.pause_on_failure): the owner or a team admin. 409 when nothing is held.",
    )
    @action(detail=True, methods=["post"])
    def release(self, request, id=None):
        job = self._get_job(Action.CHANGE)
        services.job_release_hold(job=job, actor=request.user)  # nothing held: 409 from the exception handler
        job = selectors.jobs_visible(request.user, detail=True).get(pk=job.pk)
        return Response(JobDetailSerializer(job, context={"request": request}).data)

    @extend_schema(request=None, responses={201: JobDetailSerializer})
    @action(detail=True, methods=["post"])
    def rerun(self, request, id=None):
        try:
            job = services.job_rerun(job=self._get_job(), user=request.user)
        except DjangoValidationError as exc:
            _raise_validation(exc)
        job = selectors.jobs_visible(request.user, detail=True).get(pk=job.pk)
        return Response(JobDetailSerializer(job, context={"request": request}).data, status=status.HTTP_201_CREATED)

    # The YAML document is the spec: a mapping of fields, as the schema says of the JSON one.
    @extend_schema(responses={(200, "application/yaml"): OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def spec(self, request, id=None):
        job = self._get_job()
        return HttpResponse(job_spec.to_yaml(job.spec), content_type="application/yaml; charset=utf-8")
