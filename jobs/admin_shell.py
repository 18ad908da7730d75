"""The shell audit in the admin: every web shell and SSH connection opened in a task, read-only.

Rows are written by the shell and SSH sockets only; nobody adds, edits or deletes them here.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from easyai_site.admin_utils import CappedCountPaginator
from jobs.models import ShellSession


@admin.register(ShellSession)
class ShellSessionAdmin(admin.ModelAdmin):
    list_display = [
        "opened_at",
        "kind",
        "username",
        "job",
        "task",
        "client",
        "closed_at",
        "shown_duration",
        "exit_code",
    ]
    list_select_related = ["job"]
    list_filter = ["kind", "opened_at"]
    search_fields = ["username", "job__public_id", "task", "client"]
    date_hierarchy = "opened_at"
    raw_id_fields = ["user", "job"]
    readonly_fields = [
        "kind",
        "user",
        "username",
        "job",
        "task",
        "client",
        "opened_at",
        "closed_at",
        "shown_duration",
        "exit_code",
    ]
    fields = readonly_fields
    paginator = CappedCountPaginator
    show_full_result_count = False

    @admin.display(description=_("duration"))
    def shown_duration(self, obj: ShellSession) -> str:
        duration = obj.duration
        text = str(timedelta(seconds=round(duration.total_seconds())))
        return text if obj.closed_at else _("%(duration)s, still open") % {"duration": text}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ShellSession | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ShellSession | None = None) -> bool:
        return False
