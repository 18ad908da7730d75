"""Operators' screens of the assets: datasets and their versions (and images, below)."""

from __future__ import annotations

from django.contrib import admin

from assets.models import Dataset, DatasetVersion

# --- datasets -----------------------------------------------------------------------------------------------------
# Versions are records of copies made once: read-only here. Deleting goes through the Datasets page or the API
# (files.datasets, a level above this app), which refuse while an active job mounts a version and remove the files.


class DatasetVersionInline(admin.TabularInline):
    model = DatasetVersion
    extra = 0
    fields = ["version", "file_count", "size_bytes", "digest", "source", "source_ref", "created_by", "created_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "owner", "created_at"]
    list_filter = ["team"]
    search_fields = ["name", "team__slug", "owner__username"]
    list_select_related = ["team", "owner"]
    raw_id_fields = ["team", "owner"]
    readonly_fields = ["team", "name", "created_at"]
    inlines = [DatasetVersionInline]

    def has_add_permission(self, request) -> bool:
        return False  # made from files by files.datasets.dataset_version_create

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = [
        "dataset",
        "version",
        "file_count",
        "size_bytes",
        "source",
        "source_ref",
        "created_by",
        "created_at",
    ]
    list_filter = ["source", "dataset__team"]
    search_fields = ["dataset__name", "dataset__team__slug", "digest", "source_ref"]
    list_select_related = ["dataset__team", "created_by"]
    readonly_fields = [f.name for f in DatasetVersion._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
