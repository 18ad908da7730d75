"""Operators' admin of directory sign-on: group mappings (directory group → team and role), the directory
accounts sync looks after, the trail of what sync changed or refused (read-only), and users' SSH keys (seen and
removed here, added by their owners only)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from accounts.models import DirectoryAccount, DirectoryChange, GroupMapping, SSHKey


@admin.register(GroupMapping)
class GroupMappingAdmin(admin.ModelAdmin):
    list_display = ["directory", "group", "team", "role", "created_at"]
    list_filter = ["directory", "role", "team"]
    list_select_related = ["team"]
    search_fields = ["group", "team__slug", "team__name"]
    autocomplete_fields = ["team"]
    fields = ["directory", "group", "team", "role"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(DirectoryAccount)
class DirectoryAccountAdmin(ReadOnlyAdmin):
    list_display = ["user", "directory", "subject", "last_seen_at", "removed_at"]
    list_filter = ["directory"]
    list_select_related = ["user"]
    search_fields = ["user__username", "subject"]
    raw_id_fields = ["user"]


@admin.register(DirectoryChange)
class DirectoryChangeAdmin(ReadOnlyAdmin):
    list_display = ["at", "user", "team", "action", "trigger", "message"]
    list_filter = ["action", "trigger"]
    list_select_related = ["user", "team"]
    search_fields = ["user__username", "team__slug", "message"]
    raw_id_fields = ["user", "team"]
    show_full_result_count = False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(SSHKey)
class SSHKeyAdmin(ReadOnlyAdmin):
    list_display = ["user", "name", "key_type", "fingerprint", "created_at", "last_used_at"]
    list_select_related = ["user"]
    search_fields = ["user__username", "name", "fingerprint"]
    raw_id_fields = ["user"]
    fields = ["user", "name", "fingerprint", "public_key", "created_at", "last_used_at"]
    readonly_fields = fields

    @admin.display(description=_("type"))
    def key_type(self, obj: SSHKey) -> str:
        return obj.key_type
