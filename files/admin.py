"""Operators' screens of the files app: resumable uploads in progress (read-only; cancelling removes the bytes)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from files import uploads
from files.models import Upload


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "space", "path", "offset", "size", "state", "expires"]
    list_filter = ["state", "space"]
    search_fields = ["owner__username", "path"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]
    readonly_fields = ["id", "owner", "space", "path", "size", "sha256", "offset", "state", "created", "expires"]
    actions = ["cancel_uploads"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # opened by its uploader through /api/v1/uploads/

    def has_delete_permission(self, request: HttpRequest, obj: Upload | None = None) -> bool:
        return False  # a row deleted here would leave its bytes behind: the action removes both

    @admin.action(description=_("Cancel the selected uploads (their bytes are removed)"))
    def cancel_uploads(self, request: HttpRequest, queryset: QuerySet[Upload]) -> None:
        count = 0
        for upload in queryset:
            uploads.upload_remove(upload=upload)
            count += 1
        messages.success(
            request, ngettext("Cancelled %(count)d upload.", "Cancelled %(count)d uploads.", count) % {"count": count}
        )
