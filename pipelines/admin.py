"""Operators' screens: pipelines with their versions (records, read-only), runs with their steps (state read-only,
stopped only through ``services.run_stop``), schedules (paused and resumed through ``services.schedule_save``)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.translation import gettext_lazy as _

from easyai_site.admin_utils import CappedCountPaginator, ServiceRefusalsMixin
from pipelines import services
from pipelines.models import Pipeline, PipelineRun, PipelineVersion, RunStep, Schedule
from teams.exceptions import ActionRefused


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class VersionInline(_ReadOnlyInline):
    model = PipelineVersion
    fields = ["number", "created_by", "created_at", "spec"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")


class ScheduleInline(_ReadOnlyInline):
    model = Schedule
    show_change_link = True
    fields = ["name", "cron", "timezone", "concurrency", "paused", "next_time", "owner"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner")


@admin.register(Pipeline)
class PipelineAdmin(ServiceRefusalsMixin, admin.ModelAdmin):
    list_display = ["name", "team", "owner", "latest", "updated_at"]
    list_filter = ["team"]
    search_fields = ["name", "team__slug", "owner__username"]
    list_select_related = ["team", "owner"]
    raw_id_fields = ["team", "owner"]
    # Versions are saved through the pages, the API or the CLI (services.pipeline_save): nothing is edited here.
    readonly_fields = ["team", "name", "description", "owner", "latest", "created_at", "updated_at"]
    inlines = [VersionInline, ScheduleInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # its runs hold on to it (PROTECT)


class StepInline(_ReadOnlyInline):
    model = RunStep
    fields = ["name", "state", "message", "items", "outputs", "cached_from", "started_at", "finished_at", "step_jobs"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("jobs__job")

    @admin.display(description=_("jobs"))
    def step_jobs(self, step: RunStep) -> str:
        rows = [
            f"[{row.item}]#{row.attempt} {row.job.public_id if row.job else '-'} {row.outcome or ''}".strip()
            for row in step.jobs.all()
        ]
        return ", ".join(rows) or "—"


@admin.register(PipelineRun)
class PipelineRunAdmin(ServiceRefusalsMixin, admin.ModelAdmin):
    list_display = ["public_id", "pipeline", "team", "owner", "state", "engine", "created_at"]
    list_filter = ["state", "engine", "team"]
    search_fields = ["public_id", "pipeline__name", "team__slug", "owner__username", "workflow"]
    list_select_related = ["pipeline__team", "team", "owner"]
    raw_id_fields = ["pipeline", "version", "team", "owner", "cluster", "schedule", "rerun_of"]
    readonly_fields = [
        "public_id", "pipeline", "version", "team", "owner", "state", "reason", "message", "params", "engine",
        "cluster", "workflow", "schedule", "scheduled_for", "rerun_of", "rerun_from", "stop_requested",
        "created_at", "started_at", "finished_at", "notified_at",
    ]  # fmt: skip
    fields = readonly_fields
    inlines = [StepInline]
    actions = ["stop_runs"]
    paginator = CappedCountPaginator
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a run's rows are its record; stop it instead

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description=_("Stop the selected runs"), permissions=["change"])
    def stop_runs(self, request, queryset) -> None:
        count = 0
        for run in queryset.select_related("pipeline", "team", "owner"):
            try:
                services.run_stop(run=run, user=request.user)
            except (ActionRefused, PermissionDenied) as exc:
                self.message_user(request, f"{run}: {exc}", messages.WARNING)
                continue
            count += 1
        self.message_user(request, _("%(n)s runs asked to stop.") % {"n": count}, messages.SUCCESS)


@admin.register(Schedule)
class ScheduleAdmin(ServiceRefusalsMixin, admin.ModelAdmin):
    list_display = ["name", "pipeline", "cron", "timezone", "concurrency", "paused", "next_time", "owner"]
    list_filter = ["paused", "concurrency", "pipeline__team"]
    search_fields = ["name", "pipeline__name", "pipeline__team__slug", "owner__username"]
    list_select_related = ["pipeline__team", "owner"]
    raw_id_fields = ["pipeline", "owner"]
    readonly_fields = [
        "pipeline", "name", "cron", "timezone", "params", "concurrency", "max_active", "catch_up", "catch_up_limit",
        "paused", "last_time", "next_time", "message", "owner", "created_at",
    ]  # fmt: skip
    fields = readonly_fields
    actions = ["pause_schedules", "resume_schedules"]

    def has_add_permission(self, request) -> bool:
        return False

    def _set_paused(self, request, queryset, paused: bool, done: str) -> None:
        count = 0
        for schedule in queryset.select_related("pipeline__team", "owner"):
            try:
                services.schedule_save(
                    user=request.user, pipeline=schedule.pipeline, data={"paused": paused}, schedule=schedule
                )
            except (ValidationError, PermissionDenied) as exc:
                self.message_user(request, f"{schedule}: {exc}", messages.WARNING)
                continue
            count += 1
        self.message_user(request, done % {"n": count}, messages.SUCCESS)

    @admin.action(description=_("Pause the selected schedules"), permissions=["change"])
    def pause_schedules(self, request, queryset) -> None:
        self._set_paused(request, queryset, True, _("%(n)s schedules paused."))

    @admin.action(description=_("Resume the selected schedules"), permissions=["change"])
    def resume_schedules(self, request, queryset) -> None:
        self._set_paused(request, queryset, False, _("%(n)s schedules resumed."))
