"""The pipelines API (DRF): ``/api/v1/pipelines/…``, ``/api/v1/pipeline-runs/{id}/…``, ``/api/v1/pipeline-schedules/…``.

Reads go through ``teams.permissions`` (whoever may not see a pipeline, its runs or its schedules gets 404), writes
through ``pipelines.services``: a service's ``ValidationError`` is a 400 naming each field (a spec's problems by
their path in the spec: ``steps.1.depends``), its ``PermissionDenied`` a 403 (a team-mate who may see but not
change), a refused action (``ActionRefused``: stop a finished run) a 409, as the site's exception handler answers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from easyai_site.api import raise_validation
from pipelines import services
from pipelines import spec as pipeline_spec
from pipelines.models import Pipeline, PipelineRun, PipelineVersion, RunState, RunStep, Schedule, StepJob, StepState
from teams import permissions
from teams.permissions import Action

# --- fields ----------------------------------------------------------------------------------------------------


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "object", "additionalProperties": {}}]})
class SpecField(serializers.Field):
    """A pipeline spec: its YAML or JSON text, or the mapping itself."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            if not data.strip():
                raise ValidationError(_("This field may not be blank."))
            return data
        if not isinstance(data, dict):
            raise ValidationError(_("Must be the spec's YAML or JSON text, or a mapping."))
        return data

    def to_representation(self, value: Any) -> Any:
        return value


# States are plain strings in the schema (their values in the help): an enum named "state" would collide with jobs'.
RUN_STATES = ", ".join(RunState.values)
STEP_STATES = ", ".join(StepState.values)


# --- serializers -----------------------------------------------------------------------------------------------


class PipelineVersionSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = PipelineVersion
        fields = ["number", "created_by", "created_at"]


class PipelineVersionDetailSerializer(PipelineVersionSerializer):
    pipeline = serializers.IntegerField(source="pipeline_id", read_only=True)
    spec = serializers.JSONField(read_only=True, help_text="the normalized spec")
    source = serializers.CharField(read_only=True, help_text="the spec as it was written (YAML or JSON)")

    class Meta(PipelineVersionSerializer.Meta):
        fields = ["pipeline", *PipelineVersionSerializer.Meta.fields, "spec", "source"]


class PipelineSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    latest = serializers.IntegerField(read_only=True, help_text="the latest version's number")

    class Meta:
        model = Pipeline
        fields = ["id", "team", "name", "description", "owner", "latest", "created_at", "updated_at"]


class PipelineDetailSerializer(PipelineSerializer):
    versions = serializers.SerializerMethodField(help_text="every version, newest first")
    can_change = serializers.SerializerMethodField(
        help_text="whether you may save versions of it and change its schedules (its owner or a team admin)"
    )

    class Meta(PipelineSerializer.Meta):
        fields = [*PipelineSerializer.Meta.fields, "can_change", "versions"]

    @extend_schema_field(PipelineVersionSerializer(many=True))
    def get_versions(self, pipeline: Pipeline) -> list[dict]:
        versions = pipeline.versions.select_related("created_by").defer("spec", "source").order_by("-number")
        return PipelineVersionSerializer(versions, many=True).data

    def get_can_change(self, pipeline: Pipeline) -> bool:
        request = self.context.get("request")
        return bool(request) and permissions.can(request.user, pipeline, Action.CHANGE)


class PipelineSavedSerializer(PipelineDetailSerializer):
    version = serializers.SerializerMethodField(help_text="the number of the version just saved")

    class Meta(PipelineDetailSerializer.Meta):
        fields = [*PipelineDetailSerializer.Meta.fields, "version"]

    def get_version(self, pipeline: Pipeline) -> int:
        return self.context["version"]


class PipelineSaveSerializer(serializers.Serializer):
    spec = SpecField(help_text="the pipeline spec: YAML or JSON text, or the mapping")
    team = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="the team, when the spec names none"
    )


class PipelineCheckSerializer(serializers.Serializer):
    spec = SpecField(help_text="the pipeline spec: YAML or JSON text, or the mapping")


class PipelineCheckedStepSerializer(serializers.Serializer):
    name = serializers.CharField()
    requires = serializers.ListField(child=serializers.CharField(), help_text="every step its depends names")
    depends = serializers.CharField(allow_blank=True)
    when = serializers.CharField(allow_blank=True)
    foreach = serializers.JSONField(allow_null=True, help_text="a list, a template naming one, or null")


class PipelineCheckedSerializer(serializers.Serializer):
    spec = serializers.JSONField(help_text="the normalized spec")
    steps = PipelineCheckedStepSerializer(many=True)


class PipelineStepJobSerializer(serializers.ModelSerializer):
    job = serializers.SlugRelatedField(slug_field="public_id", read_only=True, allow_null=True)
    job_state = serializers.SerializerMethodField()

    class Meta:
        model = StepJob
        fields = ["item", "attempt", "job", "job_state", "outcome", "retry_at"]

    def get_job_state(self, row: StepJob) -> str | None:
        return row.job.state if row.job_id and row.job else None


class PipelineStepSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True, help_text=STEP_STATES)
    requires = serializers.SerializerMethodField()
    cached_from = serializers.SerializerMethodField(help_text="the run whose step's outputs this one reused")
    items = serializers.JSONField(read_only=True, allow_null=True)
    outputs = serializers.JSONField(read_only=True)
    jobs = PipelineStepJobSerializer(many=True, read_only=True)

    class Meta:
        model = RunStep
        fields = [
            "name", "state", "message", "requires", "items", "outputs", "started_at", "finished_at", "cached_from",
            "jobs",
        ]  # fmt: skip

    def get_requires(self, step: RunStep) -> list[str]:
        return self.context.get("requires", {}).get(step.name, [])

    def get_cached_from(self, step: RunStep) -> str | None:
        origin = step.cached_from
        return origin.run.public_id if origin is not None else None


class PipelineRunSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    pipeline = serializers.IntegerField(source="pipeline_id", read_only=True)
    pipeline_name = serializers.CharField(source="pipeline.name", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    state = serializers.CharField(read_only=True, help_text=RUN_STATES)
    params = serializers.JSONField(read_only=True)
    schedule = serializers.SerializerMethodField(help_text="the schedule that made it, or null")
    rerun_of = serializers.SlugRelatedField(slug_field="public_id", read_only=True, allow_null=True)

    class Meta:
        model = PipelineRun
        fields = [
            "id", "pipeline", "pipeline_name", "team", "owner", "version", "state", "reason", "message", "params",
            "engine", "workflow", "schedule", "scheduled_for", "rerun_of", "rerun_from", "stop_requested",
            "created_at", "started_at", "finished_at",
        ]  # fmt: skip

    def get_schedule(self, run: PipelineRun) -> int | None:
        return run.schedule_id


class PipelineRunDetailSerializer(PipelineRunSerializer):
    steps = serializers.SerializerMethodField()

    class Meta(PipelineRunSerializer.Meta):
        fields = [*PipelineRunSerializer.Meta.fields, "steps"]

    @extend_schema_field(PipelineStepSerializer(many=True))
    def get_steps(self, run: PipelineRun) -> list[dict]:
        requires = {step["name"]: list(step.get("requires") or []) for step in run.version.spec.get("steps", [])}
        return PipelineStepSerializer(run.steps.all(), many=True, context={"requires": requires}).data


class PipelineRunCreateSerializer(serializers.Serializer):
    params = serializers.DictField(required=False, help_text="param name -> value (text is read as its type)")
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=2_000_000_000, help_text="default: the latest"
    )


class PipelineStepNameSerializer(serializers.Serializer):
    step = serializers.CharField(max_length=100)


class PipelineScheduleSerializer(serializers.ModelSerializer):
    pipeline = serializers.IntegerField(source="pipeline_id", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    params = serializers.JSONField(read_only=True)

    class Meta:
        model = Schedule
        fields = [
            "id", "pipeline", "name", "cron", "timezone", "params", "concurrency", "max_active", "catch_up",
            "catch_up_limit", "paused", "last_time", "next_time", "message", "owner", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class PipelineScheduleWriteSerializer(serializers.Serializer):
    """The fields a schedule is made with or changed by; the service checks them all (unknown ones refused)."""

    name = serializers.CharField(required=False, max_length=100)
    cron = serializers.CharField(required=False, max_length=100, help_text="such as '0 3 * * *'")
    timezone = serializers.CharField(required=False, max_length=64, help_text="such as UTC or Asia/Shanghai")
    params = serializers.DictField(required=False)
    concurrency = serializers.CharField(required=False, help_text="allow, forbid or replace")
    max_active = serializers.IntegerField(required=False, min_value=1, max_value=100)
    catch_up = serializers.BooleanField(required=False)
    catch_up_limit = serializers.IntegerField(required=False, min_value=0, max_value=1000)
    paused = serializers.BooleanField(required=False)

    def validate(self, attrs: dict) -> dict:
        unknown = sorted(str(key) for key in getattr(self, "initial_data", {}) if key not in self.fields)
        if unknown:
            raise ValidationError({key: [_("unknown field")] for key in unknown})
        return attrs


def _bounded(moment: datetime, field: str) -> datetime:
    # croniter walks from a second before the start: the ends of datetime's range would overflow.
    if not 1970 <= moment.year <= 2999:
        raise ValidationError({field: [_("must be between the years 1970 and 2999")]})
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class PipelineBackfillSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="ISO-8601; the schedule's times from here")
    end = serializers.DateTimeField(help_text="ISO-8601; to here, included")

    def validate(self, attrs: dict) -> dict:
        start, end = _bounded(attrs["start"], "start"), _bounded(attrs["end"], "end")
        if end < start:
            raise ValidationError({"end": [_("must not be before start")]})
        return {"start": start, "end": end}


class PipelineBackfillResultSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="how many runs were made (a time that had its run is left as it is)")
    runs = PipelineRunSerializer(many=True)


# --- reads -----------------------------------------------------------------------------------------------------


def pipelines_visible(user) -> QuerySet[Pipeline]:
    return permissions.restrict(Pipeline.objects.select_related("team", "owner"), user)


def runs_visible(user) -> QuerySet[PipelineRun]:
    return permissions.restrict(
        PipelineRun.objects.select_related("pipeline", "version", "team", "owner", "rerun_of"), user
    )


def _pipeline(request, pk: int | str, action: Action = Action.VIEW) -> Pipeline:
    return permissions.get_or_404(pipelines_visible(request.user), request.user, action, pk=int(pk))


def _run(request, run_id: str, *, detail: bool = False) -> PipelineRun:
    queryset = runs_visible(request.user)
    if detail:
        queryset = queryset.prefetch_related(
            Prefetch(
                "steps",
                RunStep.objects.select_related("cached_from__run").prefetch_related(
                    Prefetch("jobs", StepJob.objects.select_related("job"))
                ),
            )
        )
    return permissions.get_or_404(queryset, request.user, Action.VIEW, public_id=run_id)


def _schedule(request, pk: int | str) -> Schedule:
    schedule = (
        Schedule.objects.select_related("pipeline__team", "owner")
        .filter(pk=int(pk), pipeline__in=pipelines_visible(request.user))
        .first()
    )
    if schedule is None:
        raise Http404(_("Not found."))
    return schedule


def _fields(request, serializer_class) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


def _run_answer(request, run: PipelineRun, code: int = status.HTTP_200_OK) -> Response:
    return Response(PipelineRunDetailSerializer(_run(request, run.public_id, detail=True)).data, status=code)


def _with_team(spec: Any, team: str) -> Any:
    """The spec with the body's team filled in where it names none (text is read here to do so)."""
    if not team:
        return spec
    data = spec
    if isinstance(spec, str):
        try:
            data = pipeline_spec.parse(spec)
        except pipeline_spec.SpecError as exc:
            raise ValidationError(exc.errors) from None
    if isinstance(data, dict) and not data.get("team"):
        return {**data, "team": team}
    return data


def steps_of(spec: dict) -> list[dict]:
    """The graph the editor draws: each step's name, what it requires, its depends, when and foreach."""
    return [
        {
            "name": step["name"],
            "requires": list(step.get("requires") or []),
            "depends": step.get("depends") or "",
            "when": step.get("when") or "",
            "foreach": step.get("foreach"),
        }
        for step in spec.get("steps", [])
    ]


# --- pipelines -------------------------------------------------------------------------------------------------


class PipelineListView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("team", str, description="only this team's pipelines")],
        responses=PipelineSerializer(many=True),
    )
    def get(self, request):
        queryset = pipelines_visible(request.user)
        team = request.query_params.get("team")
        if team:
            queryset = queryset.filter(team__slug=team)
        return Response(PipelineSerializer(queryset, many=True).data)

    @extend_schema(
        request=PipelineSaveSerializer,
        responses={201: PipelineSavedSerializer},
        description="Save a spec as the next version of its pipeline (made on first save; its team: the spec's, "
        "the body's team, or your current team). A new version of someone else's pipeline is saved by its owner or "
        "a team admin. A spec's problems are answered by their path in the spec.",
    )
    def post(self, request):
        fields = _fields(request, PipelineSaveSerializer)
        spec = fields["spec"]
        source = spec if isinstance(spec, str) else ""
        try:
            version = services.pipeline_save(
                user=request.user, data=_with_team(spec, fields.get("team", "")), source=source
            )
        except DjangoValidationError as exc:
            raise_validation(exc)
        pipeline = _pipeline(request, version.pipeline_id)
        context = {"request": request, "version": version.number}
        return Response(PipelineSavedSerializer(pipeline, context=context).data, status=status.HTTP_201_CREATED)


class PipelineValidateView(APIView):
    @extend_schema(
        request=PipelineCheckSerializer,
        responses={200: PipelineCheckedSerializer},
        description="Check a spec without saving it: the normalized spec and its graph, or 400 naming every "
        "problem by its path in the spec.",
    )
    def post(self, request):
        fields = _fields(request, PipelineCheckSerializer)
        try:
            spec = services.pipeline_check(user=request.user, data=fields["spec"])
        except DjangoValidationError as exc:
            raise_validation(exc)
        return Response({"spec": spec, "steps": steps_of(spec)})


class PipelineDetailView(APIView):
    @extend_schema(responses=PipelineDetailSerializer)
    def get(self, request, pk):
        pipeline = _pipeline(request, pk)
        return Response(PipelineDetailSerializer(pipeline, context={"request": request}).data)


class VersionDetailView(APIView):
    @extend_schema(responses=PipelineVersionDetailSerializer)
    def get(self, request, pk, number):
        pipeline = _pipeline(request, pk)
        version = pipeline.versions.select_related("created_by").filter(number=int(number)).first()
        if version is None:
            raise Http404(_("Not found."))
        return Response(PipelineVersionDetailSerializer(version).data)


class PipelineRunListView(GenericAPIView):
    serializer_class = PipelineRunSerializer

    def get_queryset(self):
        return PipelineRun.objects.none()

    @extend_schema(
        parameters=[OpenApiParameter("state", str, description="a state, or several separated by commas")],
        responses=PipelineRunSerializer(many=True),
    )
    def get(self, request, pk):
        pipeline = _pipeline(request, pk)
        queryset = runs_visible(request.user).filter(pipeline=pipeline).select_related("schedule")
        wanted = [s for s in request.query_params.get("state", "").split(",") if s]
        if wanted:
            unknown = sorted(set(wanted) - set(RunState.values))
            if unknown:
                raise ValidationError({"state": [_("No state %(names)s.") % {"names": ", ".join(unknown)}]})
            queryset = queryset.filter(state__in=wanted)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(PipelineRunSerializer(page, many=True).data)

    @extend_schema(request=PipelineRunCreateSerializer, responses={201: PipelineRunDetailSerializer})
    def post(self, request, pk):
        pipeline = _pipeline(request, pk)
        fields = _fields(request, PipelineRunCreateSerializer)
        version = None
        if fields.get("version") is not None:
            version = pipeline.versions.filter(number=fields["version"]).first()
            if version is None:
                raise ValidationError({"version": [_("The pipeline has no version %(n)d.") % {"n": fields["version"]}]})
        try:
            run = services.run_submit(
                user=request.user, pipeline=pipeline, version=version, params=fields.get("params") or {}
            )
        except DjangoValidationError as exc:
            raise_validation(exc)
        return _run_answer(request, run, status.HTTP_201_CREATED)


# --- runs ------------------------------------------------------------------------------------------------------


class RunDetailView(APIView):
    @extend_schema(responses=PipelineRunDetailSerializer)
    def get(self, request, run_id):
        return Response(PipelineRunDetailSerializer(_run(request, run_id, detail=True)).data)


class RunStopView(APIView):
    @extend_schema(
        request=None,
        responses=PipelineRunDetailSerializer,
        description="Stop the run: its jobs are stopped, its unfinished steps end stopped (its owner or a team admin).",
    )
    def post(self, request, run_id):
        run = services.run_stop(run=_run(request, run_id), user=request.user)
        return _run_answer(request, run)


class RunRetryView(APIView):
    @extend_schema(
        request=PipelineStepNameSerializer,
        responses=PipelineRunDetailSerializer,
        description="Run a failed or stopped step again in the same run (its owner or a team admin).",
    )
    def post(self, request, run_id):
        run = _run(request, run_id)
        step = _fields(request, PipelineStepNameSerializer)["step"]
        try:
            services.run_retry_step(run=run, step_name=step, user=request.user)
        except DjangoValidationError as exc:
            raise_validation(exc)
        return _run_answer(request, run)


class RunRerunFromView(APIView):
    @extend_schema(
        request=PipelineStepNameSerializer,
        responses={201: PipelineRunDetailSerializer},
        description="A new run of the same version and params that reuses the outputs of the steps before the "
        "chosen one and runs it and everything after it again.",
    )
    def post(self, request, run_id):
        run = _run(request, run_id)
        step = _fields(request, PipelineStepNameSerializer)["step"]
        try:
            new = services.run_rerun_from(run=run, step_name=step, user=request.user)
        except DjangoValidationError as exc:
            raise_validation(exc)
        return _run_answer(request, new, status.HTTP_201_CREATED)


# --- schedules -------------------------------------------------------------------------------------------------


class ScheduleListView(APIView):
    @extend_schema(responses=PipelineScheduleSerializer(many=True))
    def get(self, request, pk):
        pipeline = _pipeline(request, pk)
        return Response(PipelineScheduleSerializer(pipeline.schedules.select_related("owner"), many=True).data)

    @extend_schema(request=PipelineScheduleWriteSerializer, responses={201: PipelineScheduleSerializer})
    def post(self, request, pk):
        pipeline = _pipeline(request, pk)
        fields = _fields(request, PipelineScheduleWriteSerializer)
        try:
            schedule = services.schedule_save(user=request.user, pipeline=pipeline, data=fields)
        except DjangoValidationError as exc:
            raise_validation(exc)
        return Response(
            PipelineScheduleSerializer(_schedule(request, schedule.pk)).data, status=status.HTTP_201_CREATED
        )


class ScheduleDetailView(APIView):
    @extend_schema(responses=PipelineScheduleSerializer)
    def get(self, request, pk):
        return Response(PipelineScheduleSerializer(_schedule(request, pk)).data)

    @extend_schema(
        request=PipelineScheduleWriteSerializer,
        responses=PipelineScheduleSerializer,
        description="Change a schedule (pause it with paused: true); its owner, the pipeline's owner or a team admin.",
    )
    def patch(self, request, pk):
        schedule = _schedule(request, pk)
        fields = _fields(request, PipelineScheduleWriteSerializer)
        try:
            services.schedule_save(user=request.user, pipeline=schedule.pipeline, data=fields, schedule=schedule)
        except DjangoValidationError as exc:
            raise_validation(exc)
        return Response(PipelineScheduleSerializer(_schedule(request, pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk):
        services.schedule_delete(user=request.user, schedule=_schedule(request, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScheduleBackfillView(APIView):
    @extend_schema(
        request=PipelineBackfillSerializer,
        responses={201: PipelineBackfillResultSerializer},
        description="A run for each of the schedule's times in [start, end], queued; a time that has its run is "
        "left as it is.",
    )
    def post(self, request, pk):
        schedule = _schedule(request, pk)
        fields = _fields(request, PipelineBackfillSerializer)
        try:
            made = services.schedule_backfill(user=request.user, schedule=schedule, **fields)
        except DjangoValidationError as exc:
            raise_validation(exc)
        runs = list(runs_visible(request.user).filter(pk__in=[run.pk for run in made]).select_related("schedule"))
        runs.sort(key=lambda run: run.scheduled_for or run.created_at)
        body = {"count": len(runs), "runs": PipelineRunSerializer(runs, many=True).data}
        return Response(body, status=status.HTTP_201_CREATED)
