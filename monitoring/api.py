"""The usage API: what a team's jobs used and cost (``GET /api/v1/usage/``, JSON or CSV), and what runs now with
its latest sample (``GET /api/v1/usage/top/``, for ``easyai top``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import OuterRef, Subquery
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.models import Job, Task
from jobs.state import JobState
from monitoring import report
from monitoring.accounting import GIB, task_requests
from monitoring.models import UsageSample
from teams.selectors import current_team_for

# A sample older than this is not "live": easyai top shows the task without figures.
LIVE_S = 300


class CSVRenderer(BaseRenderer):
    """``?format=csv`` or ``Accept: text/csv``: the view streams the CSV itself; this names the format."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return b"" if data is None else str(data).encode()


# --- serializers (the schema's description of the answers) ----------------------------------------------------


class UsageFiguresSerializer(serializers.Serializer):
    jobs = serializers.IntegerField(help_text="jobs counted")
    running_hours = serializers.FloatField(help_text="hours the jobs ran")
    core_hours_requested = serializers.FloatField()
    core_hours_used = serializers.FloatField()
    gib_hours_requested = serializers.FloatField()
    gib_hours_used = serializers.FloatField()
    gpu_hours_requested = serializers.FloatField()
    gpu_hours_used = serializers.FloatField(help_text="GPU-hours × utilisation")
    cpu_efficiency = serializers.FloatField(allow_null=True, help_text="used ÷ requested; null when none requested")
    memory_efficiency = serializers.FloatField(allow_null=True)
    gpu_efficiency = serializers.FloatField(allow_null=True)
    cost = serializers.FloatField(help_text="Σ interval × max(requested, used) × price; GPUs by request")


class UsageRowSerializer(UsageFiguresSerializer):
    day = serializers.DateField(required=False, help_text="group_by=day, and the day a job started (group_by=job)")
    month = serializers.CharField(required=False, help_text="group_by=month: YYYY-MM")
    user = serializers.CharField(required=False, help_text="group_by=user: the username")
    job = serializers.CharField(required=False, help_text="group_by=job: the job's id")
    name = serializers.CharField(required=False, help_text="group_by=job: the job's name")
    team = serializers.CharField(required=False, help_text="group_by=job: the job's team")
    owner = serializers.CharField(required=False, help_text="group_by=job: the job's owner")


class UsageReportSerializer(serializers.Serializer):
    team = serializers.CharField(help_text='the team\'s slug, or "all"')
    # "from" is a Python keyword: the field is declared below under its wire name.
    to = serializers.DateField()
    group_by = serializers.ChoiceField(choices=report.GROUPS)
    currency = serializers.CharField(allow_null=True, help_text="null when the jobs' clusters charge in several")
    totals = UsageFiguresSerializer()
    rows = UsageRowSerializer(many=True)
    truncated = serializers.BooleanField(
        help_text=f"group_by=job: only the {report.JOB_ROWS} most costly jobs are listed (the CSV has them all)"
    )


UsageReportSerializer._declared_fields["from"] = serializers.DateField()


class UsageTopTaskSerializer(serializers.Serializer):
    job = serializers.CharField()
    name = serializers.CharField()
    team = serializers.CharField()
    owner = serializers.CharField()
    task = serializers.CharField(help_text="role-index, e.g. worker-0")
    node = serializers.CharField()
    gpu_ids = serializers.ListField(child=serializers.CharField())
    started_at = serializers.DateTimeField(allow_null=True)
    cpu_request = serializers.FloatField(help_text="cores")
    memory_request_bytes = serializers.IntegerField()
    gpu_request = serializers.IntegerField()
    sampled_at = serializers.DateTimeField(allow_null=True, help_text="null: no sample in the last 5 minutes")
    cpu_cores = serializers.FloatField(allow_null=True)
    memory_bytes = serializers.IntegerField(allow_null=True)
    gpu_util = serializers.FloatField(allow_null=True, help_text="percent, mean over the task's GPUs")
    gpu_memory_bytes = serializers.IntegerField(allow_null=True)


class UsageTopSerializer(serializers.Serializer):
    team = serializers.CharField()
    tasks = UsageTopTaskSerializer(many=True)


TEAM_PARAM = OpenApiParameter(
    "team", str, description='a team\'s slug, or "all" (every team you may see); default: your current team'
)


def _query_params(request: Request) -> dict[str, str]:
    return {key: request.query_params.get(key, "") for key in ("team", "from", "to", "group_by")}


def _usage_query(request: Request) -> report.UsageQuery:
    try:
        return report.parse_query(_query_params(request), request.user, default_team=current_team_for(request.user))
    except report.QueryError as exc:
        raise ValidationError({exc.param: [str(exc)]}) from None


class _UsageAPIView(APIView):
    renderer_classes = [JSONRenderer, CSVRenderer]

    def handle_exception(self, exc):
        # Errors are JSON whatever format was asked: a CSV of an error would say nothing.
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)


class UsageView(_UsageAPIView):
    """What a team's jobs used and cost, grouped by user, job, day or month."""

    @extend_schema(
        summary="Usage and cost",
        description=(
            "What the jobs of a team (or every team you may see) used and cost over a range of days, by the day "
            "each job started: totals and one row per group. With `?format=csv` or `Accept: text/csv`, the rows "
            "as CSV (every job, when grouped by job)."
        ),
        parameters=[
            TEAM_PARAM,
            OpenApiParameter(
                "from",
                OpenApiTypes.DATE,
                description="the first day (default: 30 days back, or 12 months for group_by=month)",
            ),
            OpenApiParameter("to", OpenApiTypes.DATE, description="the last day (default: today)"),
            OpenApiParameter("group_by", str, enum=list(report.GROUPS), description="default: day"),
            OpenApiParameter("format", str, enum=["json", "csv"], description="csv: the rows as CSV"),
        ],
        responses={
            (200, "application/json"): UsageReportSerializer,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="the rows as CSV, a header first"),
        },
    )
    def get(self, request: Request) -> Response | StreamingHttpResponse:
        query = _usage_query(request)
        if request.accepted_renderer.format == "csv":
            response = StreamingHttpResponse(report.csv_lines(query), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{report.csv_filename(query)}"'
            return response
        return Response(report.report(query))


class UsageTopView(_UsageAPIView):
    """The running tasks of a team with their requests and latest sample (``easyai top``)."""

    renderer_classes = [JSONRenderer]

    @extend_schema(
        summary="Running tasks with their live usage",
        description=(
            "Each running task of the team's running jobs (or of every team you may see) with its request and "
            f"its latest sample of CPU, memory and GPU (none when the last is older than {LIVE_S} s)."
        ),
        parameters=[TEAM_PARAM],
        responses={200: UsageTopSerializer},
    )
    def get(self, request: Request) -> Response:
        query = _usage_query(request)
        return Response({"team": query.team_label, "tasks": running_tasks(query)})


def running_tasks(query: report.UsageQuery) -> list[dict]:
    """The running tasks in the query's teams, oldest job first, each with its request and latest live sample."""
    jobs = Job.objects.filter(state=JobState.RUNNING)
    if query.team is not None:
        jobs = jobs.filter(team_id=query.team.pk)
    elif query.team_ids is not None:
        jobs = jobs.filter(team_id__in=query.team_ids)
    jobs_by_id = {
        job.pk: job
        for job in jobs.select_related("team", "owner").only(
            "pk",
            "public_id",
            "name",
            "spec",
            "cpu_milli",
            "memory_bytes",
            "gpu",
            "started_at",
            "team__slug",
            "owner__username",
        )  # fmt: skip
    }
    if not jobs_by_id:
        return []
    # Each task's newest sample, found on the (job, at) index; one older than LIVE_S is not shown.
    newest = UsageSample.objects.filter(job_id=OuterRef("job_id"), task_id=OuterRef("pk")).order_by("-at").values("pk")
    tasks = list(
        Task.objects.filter(job_id__in=list(jobs_by_id), state=Task.State.RUNNING)
        .annotate(newest_sample=Subquery(newest[:1]))
        .order_by("job_id", "role", "index")
    )
    by_job: dict[int, list[Task]] = {}
    for task in tasks:
        by_job.setdefault(task.job_id, []).append(task)
    requests = {}
    for job_id, job_tasks in by_job.items():
        requests.update(task_requests(jobs_by_id[job_id], job_tasks))
    live = timezone.now() - timedelta(seconds=LIVE_S)
    samples = {
        sample.task_id: sample
        for sample in UsageSample.objects.filter(
            pk__in=[task.newest_sample for task in tasks if task.newest_sample], at__gte=live
        ).only("task_id", "at", "cpu_cores", "memory_bytes", "gpu_util", "gpu_memory_bytes")
    }
    rows = []
    for task in tasks:
        job = jobs_by_id[task.job_id]
        request = requests[task.pk]
        sample = samples.get(task.pk)
        rows.append(
            {
                "job": job.public_id,
                "name": job.name,
                "team": job.team.slug,
                "owner": job.owner.username,
                "task": task.name,
                "node": task.node,
                "gpu_ids": [str(gpu) for gpu in task.gpu_ids or []],
                "started_at": task.started_at,
                "cpu_request": round(request.cores, 3),
                "memory_request_bytes": int(round(request.gib * GIB)),
                "gpu_request": request.gpus,
                "sampled_at": sample.at if sample else None,
                "cpu_cores": round(sample.cpu_cores, 3) if sample else None,
                "memory_bytes": sample.memory_bytes if sample else None,
                "gpu_util": sample.gpu_util if sample else None,
                "gpu_memory_bytes": sample.gpu_memory_bytes if sample else None,
            }
        )
    return rows
