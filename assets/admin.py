"""Operators' screens of the assets: datasets and their versions (and images, below)."""

from __future__ import annotations

from django.contrib import admin

from assets import images as image_services
from assets.models import Dataset, DatasetVersion, Image
from easyai_site.admin_utils import ServiceRefusalsMixin

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


# --- images -------------------------------------------------------------------------------------------------------
# Operators are platform admins: they register the platform's images (no team) and any team's. Saves go through
# assets.images (the name and tags checked, one default per framework and place).


@admin.register(Image)
class ImageAdmin(ServiceRefusalsMixin, admin.ModelAdmin):
    list_display = ["name", "team", "tags", "frameworks", "accelerator", "default_for", "created_at"]
    list_filter = ["accelerator", "team"]
    search_fields = ["name", "description", "team__slug"]
    list_select_related = ["team"]
    raw_id_fields = ["team"]
    readonly_fields = ["created_by", "created_at"]

    def save_model(self, request, obj: Image, form, change: bool) -> None:
        values = {field: getattr(obj, field) for field in image_services.EDITABLE}
        if change:
            image_services.image_update(user=request.user, image=obj, **values)
        else:
            saved = image_services.image_register(user=request.user, team=obj.team, **values)
            obj.pk = saved.pk
