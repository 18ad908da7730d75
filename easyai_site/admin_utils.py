"""Admin helpers shared by the apps: a paginator that does not count, and the per-object sharing page."""

from __future__ import annotations

from django import forms
from django.core.paginator import Paginator
from django.db.models import Model
from django.http import HttpRequest
from django.utils.functional import cached_property
from guardian.admin import AdminGroupObjectPermissionsForm, AdminUserObjectPermissionsForm, GuardedModelAdminMixin

from teams.services import SHARE_PERMISSIONS, object_share_exactly


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows: big event and job tables page without a full COUNT(*)."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return len(self.object_list.values_list("pk", flat=True)[: self.CAP + 1])


# --- sharing one object (django-guardian's object permissions page) ---------------------------
# Used by the admins of every app whose objects are shareable (teams.sharing); kept here, above the
# apps, so no app's admin imports another app's admin.


def _share_permission(codename: str) -> str:
    return codename.split("_", 1)[0]


def _share_choices(choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(codename, name) for codename, name in choices if _share_permission(codename) in SHARE_PERMISSIONS]


def _chosen(codenames: list[str]) -> list[str]:
    return [permission for permission in SHARE_PERMISSIONS if permission in {_share_permission(c) for c in codenames}]


class ShareWithUserForm(AdminUserObjectPermissionsForm):
    def get_obj_perms_field_choices(self) -> list[tuple[str, str]]:
        return _share_choices(super().get_obj_perms_field_choices())

    def save_obj_perms(self) -> None:
        codenames = self.cleaned_data[self.get_obj_perms_field_name()]
        object_share_exactly(obj=self.obj, grantee=self.user, permissions=_chosen(codenames))


class ShareWithGroupForm(AdminGroupObjectPermissionsForm):
    def get_obj_perms_field_choices(self) -> list[tuple[str, str]]:
        return _share_choices(super().get_obj_perms_field_choices())

    def save_obj_perms(self) -> None:
        codenames = self.cleaned_data[self.get_obj_perms_field_name()]
        object_share_exactly(obj=self.obj, grantee=self.group, permissions=_chosen(codenames))


class SharingAdminMixin(GuardedModelAdminMixin):
    """An "Object permissions" page on the change form: grant view or change on this object to anyone.

    Change always comes with view (teams.services.object_share); the other model
    permissions mean nothing per object here and are not offered.
    """

    def get_obj_perms_base_context(self, request: HttpRequest, obj: Model) -> dict:
        context = super().get_obj_perms_base_context(request, obj)
        context["model_perms"] = [
            perm for perm in context["model_perms"] if _share_permission(perm.codename) in SHARE_PERMISSIONS
        ]
        return context

    def get_obj_perms_manage_user_form(self, request: HttpRequest) -> type[forms.Form]:
        return ShareWithUserForm

    def get_obj_perms_manage_group_form(self, request: HttpRequest) -> type[forms.Form]:
        return ShareWithGroupForm
