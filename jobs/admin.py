"""Operators' view of experiments, jobs, tasks, events and volumes.

A job's state is read-only here; it changes only through the admin actions,
which call the same services as the pages and the API. Jobs are never deleted
from the table (their events, tasks and outputs are the audit trail): the
delete action stops and hides them through services.job_delete. Per-object
grants (sharing a job with someone outside its team) are made on the job's
"Object permissions" page.
"""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from easyai_site.admin_utils import CappedCountPaginator, SharingAdminMixin
from jobs import services
from jobs import templates as job_templates
from jobs.models import Experiment, Job, JobClusterEvent, JobEvent, JobTemplate, Task, Volume


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "owner", "created_at"]
    list_select_related = ["team", "owner"]
    list_filter = ["team"]
    search_fields = ["name", "team__slug", "owner__username"]
    raw_id_fields = ["team", "owner"]


class TaskInline(admin.TabularInline):
    model = Task
    extra = 0
    can_delete = False
    fields = ["role", "index", *Task.OBSERVED_FIELDS]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class JobEventInline(admin.TabularInline):
    model = JobEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "from_state", "to_state", "reason", "message", "actor"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(SharingAdminMixin, admin.ModelAdmin):
    list_display = [
        "public_id",
        "name",
        "team",
        "owner",
        "cluster",
        "framework",
        "state",
        "priority",
        "created_at",
        "deleted",
    ]
    list_select_related = ["team", "owner", "cluster"]
    list_filter = ["state", "framework", "priority", "cluster", "deleted"]
    search_fields = ["public_id", "name", "owner__username", "team__slug"]
    raw_id_fields = ["pre_job", "rerun_of"]
    readonly_fields = [
        "public_id",
        # Where the job runs, whose quota it counts against and who may act on it are fixed at submission.
        "team",
        "owner",
        "cluster",
        "experiment",
        "state",
        "reason",
        "message",
        "spec",
        "framework",
        "cpu_milli",
        "memory_bytes",
        "gpu",
        "created_at",
        "scheduled_at",
        "started_at",
        "finished_at",
        "submit_attempts",
        "submit_retry_at",
        "submit_error",
        "last_synced_at",
        "missing_since",
        "stop_requested",
        "stop_attempts",
        "stop_retry_at",
        "stop_error",
        "attempt",
        "deleted",
        "deleted_at",
    ]
    inlines = [TaskInline, JobEventInline]
    actions = ["stop_jobs", "delete_jobs", "resync_jobs"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    date_hierarchy = None

    def has_add_permission(self, request):
        return False  # jobs are submitted through the spec, not typed in here

    def has_delete_permission(self, request, obj=None):
        return False  # a row delete would cascade to events and tasks; delete_jobs below hides them instead

    @admin.action(description=_("Stop the selected jobs"))
    def stop_jobs(self, request, queryset):
        stopped = 0
        for job in queryset:
            try:
                services.job_stop(job=job, actor=request.user, reason="stopped by admin")
                stopped += 1
            except services.JobActionRefused as exc:
                self.message_user(request, f"{job.public_id}: {exc}", messages.WARNING)
        self.message_user(request, ngettext("%d job stopped.", "%d jobs stopped.", stopped) % stopped)

    @admin.action(
        description=_("Stop and delete the selected jobs (the records stay for audit)"), permissions=["change"]
    )
    def delete_jobs(self, request, queryset):
        deleted = 0
        for job in queryset.filter(deleted=False):
            services.job_delete(job=job, actor=request.user)
            deleted += 1
        self.message_user(request, ngettext("%d job deleted.", "%d jobs deleted.", deleted) % deleted)

    @admin.action(description=_("Resync the selected jobs' clusters now"))
    def resync_jobs(self, request, queryset):
        from django_q.tasks import async_task

        clusters = set(queryset.values_list("cluster_id", flat=True))
        for cluster_pk in clusters:
            async_task("jobs.tasks.sync_cluster", cluster_pk)
        self.message_user(
            request, ngettext("%d cluster resync queued.", "%d cluster resyncs queued.", len(clusters)) % len(clusters)
        )


@admin.register(JobEvent)
class JobEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "job", "from_state", "to_state", "reason", "actor"]
    list_select_related = ["job", "actor"]
    list_filter = ["to_state"]
    search_fields = ["job__public_id", "reason"]
    raw_id_fields = ["job", "actor"]
    readonly_fields = ["job", "from_state", "to_state", "reason", "message", "actor", "created_at", "notified_at"]
    paginator = CappedCountPaginator
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(JobClusterEvent)
class JobClusterEventAdmin(admin.ModelAdmin):
    """The clusters' events about jobs (Kubernetes Events), as the sync pass kept them: read-only."""

    list_display = ["at", "job", "task", "type", "reason", "count", "object"]
    list_select_related = ["job", "task"]
    list_filter = ["type"]
    search_fields = ["job__public_id", "reason"]
    raw_id_fields = ["job", "task"]
    readonly_fields = ["job", "task", "uid", "type", "reason", "message", "count", "object", "first_at", "at"]
    paginator = CappedCountPaginator
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Volume)
class VolumeAdmin(admin.ModelAdmin):
    list_display = ["name", "mount_path", "read_only", "host_path", "nfs_server", "nfs_path"]
    search_fields = ["name"]
    filter_horizontal = ["teams"]


# --- job templates: made and deleted through jobs.templates (placeholders checked, the spec validated) ---------


@admin.register(JobTemplate)
class JobTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "framework", "owner", "updated_at"]
    list_filter = ["framework", "team"]
    search_fields = ["name", "description", "team__slug", "owner__username"]
    list_select_related = ["team", "owner"]
    raw_id_fields = ["team", "owner"]
    readonly_fields = ["framework", "spec", "fields", "owner", "created_at", "updated_at"]
    actions = ["load_shipped"]

    def has_add_permission(self, request) -> bool:
        return False  # from a spec or a job: the API, the job page, or manage.py load_templates

    @admin.action(description=_("Load the shipped templates (examples/templates) as platform templates"))
    def load_shipped(self, request, queryset) -> None:
        loaded = job_templates.load_platform_templates(user=request.user)
        self.message_user(request, _("%(n)d platform templates loaded.") % {"n": len(loaded)}, messages.SUCCESS)


from jobs import admin_shell  # noqa: E402, F401
