"""Admin helpers shared by the apps: a paginator that does not count, services' refusals shown as messages, the
sections apps add to a team's page, and the per-object sharing page."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.functional import cached_property
from guardian.admin import AdminGroupObjectPermissionsForm, AdminUserObjectPermissionsForm, GuardedModelAdminMixin

from teams.services import SHARE_PERMISSIONS, object_share_exactly


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows: big event and job tables page without a full COUNT(*)."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return len(self.object_list.values_list("pk", flat=True)[: self.CAP + 1])


# --- a service's refusal is a message, not a server error -----------------------------------------------


class ServiceRefusalsMixin:
    """Shows a service's ValidationError as an error message instead of a server error.

    The admin's add, change and delete views run in one transaction, so the refused
    change is rolled back whole before the message is shown.
    """

    def _refused(self, request: HttpRequest, exc: ValidationError) -> HttpResponse:
        for message in exc.messages:
            self.message_user(request, message, messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def changeform_view(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return super().changeform_view(request, *args, **kwargs)
        except ValidationError as exc:
            return self._refused(request, exc)

    def delete_view(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return super().delete_view(request, *args, **kwargs)
        except ValidationError as exc:
            return self._refused(request, exc)

    def changelist_view(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # An action (bulk delete) logs before it acts: a refusal rolls the log entries back with the rest.
        try:
            with transaction.atomic():
                return super().changelist_view(request, *args, **kwargs)
        except ValidationError as exc:
            return self._refused(request, exc)


# --- sections of a team's admin page that apps above teams add ---------------------------------------

# Inlines the apps above teams add to a team's admin page (they register them from their own admin.py);
# teams.admin.TeamAdmin shows them.
TEAM_INLINES: list[type[admin.options.InlineModelAdmin]] = []


def team_inline(inline: type[admin.options.InlineModelAdmin]) -> type[admin.options.InlineModelAdmin]:
    """Show an inline on every team's admin page (a class decorator); its formset saves through its services."""
    if inline not in TEAM_INLINES:
        TEAM_INLINES.append(inline)
    return inline


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
