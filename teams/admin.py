"""Operators' admin for users, teams, memberships, profiles and API tokens (quotas: clusters/admin.py).

Every change goes through teams.services, so the admin keeps the same rules as
the pages and the API: reserved slugs are refused, a team's last admin is
neither removed nor demoted, quota changes reach cluster provisioning. A
refused change shows the service's message and leaves every row as it was.
A team created here has no admin until an operator adds one inline.

The "Object permissions" page other apps' admins offer is easyai_site.admin_utils.SharingAdminMixin; the
sections apps above teams add to a team's page are registered there too (team_inline).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from easyai_site.admin_utils import TEAM_INLINES, ServiceRefusalsMixin
from teams import services
from teams.forms import AdminSignInForm
from teams.models import ApiToken, Membership, Profile, Team
from teams.permissions import can_create_team

User = get_user_model()

# /admin/login/ counts attempts per address and user name like every other sign-in path (teams.signin),
# and over the limit answers 429 with Retry-After as /accounts/login/ does, the form saying when to retry.
admin.site.login_form = AdminSignInForm
_admin_site_login = admin.site.login


def _admin_login(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    response = _admin_site_login(request, extra_context)
    form = (getattr(response, "context_data", None) or {}).get("form")
    retry_after = getattr(form, "retry_after", None)
    if retry_after is not None:
        response.status_code = 429
        response["Retry-After"] = str(retry_after)
    return response


# An attribute of the one site, read when its URLs are built (after every admin module is imported).
admin.site.login = _admin_login


def _save_memberships(formset) -> None:
    """Apply a membership inline through the services: additions, role changes, removals."""
    formset.save(commit=False)
    for membership in formset.new_objects:
        services.membership_add(team=membership.team, username=membership.user.username, role=membership.role)
    changed = [membership for membership, fields in formset.changed_objects if "role" in fields]
    # Promotions before demotions: swapping admins in one save keeps the team an admin throughout.
    changed.sort(key=lambda membership: membership.role != Membership.Role.ADMIN)
    for membership in changed:
        services.membership_change_role(team=membership.team, username=membership.user.username, role=membership.role)
    for membership in formset.deleted_objects:
        services.membership_remove(team=membership.team, username=membership.user.username)


class MembershipInlineForm(forms.ModelForm):
    """An existing row keeps its team and user: a new pairing is a removal and an addition."""

    fixed_field = ""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and self.fixed_field in self.fields:
            self.fields[self.fixed_field].disabled = True


class MembershipOfUserForm(MembershipInlineForm):
    fixed_field = "team"


class MembershipOfTeamForm(MembershipInlineForm):
    fixed_field = "user"


class MembershipOfUserInline(admin.TabularInline):
    model = Membership
    form = MembershipOfUserForm
    fk_name = "user"
    extra = 0
    autocomplete_fields = ["team"]
    fields = ["team", "role", "source", "created_at"]
    readonly_fields = ["source", "created_at"]


class MembershipOfTeamInline(admin.TabularInline):
    model = Membership
    form = MembershipOfTeamForm
    fk_name = "team"
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "source", "created_at"]
    readonly_fields = ["source", "created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).select_related("user")


if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserAdmin(ServiceRefusalsMixin, DjangoUserAdmin):
    inlines = [MembershipOfUserInline]
    actions = ["approve"]

    @admin.action(description=_("Approve the selected accounts (they may sign in)"), permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet) -> None:
        approved = services.user_approve(users=queryset)
        self.message_user(request, _("%(count)d account(s) approved.") % {"count": approved}, messages.SUCCESS)

    def delete_model(self, request: HttpRequest, obj) -> None:
        services.user_delete(user=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        services.users_delete(users=queryset)

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        if formset.model is Membership:
            _save_memberships(formset)
        else:
            super().save_formset(request, form, formset, change)


class TeamAdminForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ["name", "slug", "description", "webhook_url", "notebook_max_lease_hours"]

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        try:
            services.team_check_slug(slug)
        except ValidationError as exc:
            raise forms.ValidationError(exc.message_dict["slug"]) from None
        return slug


@admin.register(Team)
class TeamAdmin(ServiceRefusalsMixin, admin.ModelAdmin):
    form = TeamAdminForm
    list_display = ["slug", "name", "member_count", "created_at"]
    search_fields = ["slug", "name", "description"]
    list_filter = ["created_at"]
    readonly_fields = ["created_at"]
    inlines = [MembershipOfTeamInline]

    def get_inlines(self, request: HttpRequest, obj: Team | None) -> list:
        # Apps above teams add their own sections (the clusters app: the team's quotas): admin_utils.team_inline.
        return [*self.inlines, *TEAM_INLINES]

    def get_readonly_fields(self, request: HttpRequest, obj: Team | None = None) -> list[str]:
        # The slug names the team's namespace on every cluster: fixed once created.
        return [*self.readonly_fields, "slug"] if obj is not None else list(self.readonly_fields)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return super().get_queryset(request).annotate(member_count=Count("memberships", distinct=True))

    @admin.display(description=_("members"), ordering="member_count")
    def member_count(self, team: Team) -> int:
        return team.member_count

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and can_create_team(request.user)

    def save_model(self, request: HttpRequest, obj: Team, form, change: bool) -> None:
        if change:
            fields = {
                name: form.cleaned_data[name] for name in form.changed_data if name in services.TEAM_EDITABLE_FIELDS
            }
            services.team_update(team=obj, **fields)
            return
        # The operator does not join the team: its admins are added inline.
        team = services.team_create(
            creator=request.user,
            join=False,
            name=obj.name,
            slug=obj.slug,
            description=obj.description,
            webhook_url=obj.webhook_url,
            notebook_max_lease_hours=obj.notebook_max_lease_hours,
        )
        obj.pk, obj.created_at = team.pk, team.created_at

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        if formset.model is Membership:
            _save_memberships(formset)
            return
        super().save_formset(request, form, formset, change)  # an added inline's formset saves through its services


@admin.register(Membership)
class MembershipAdmin(ServiceRefusalsMixin, admin.ModelAdmin):
    list_display = ["team", "user", "role", "source", "created_at"]
    list_filter = ["role", "source", "team"]
    list_select_related = ["team", "user"]
    search_fields = ["team__slug", "team__name", "user__username", "user__email"]
    autocomplete_fields = ["team", "user"]
    # Directory sync owns what a group mapping granted; an operator's change here makes the membership hand-made.
    readonly_fields = ["source", "created_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Membership | None = None) -> list[str]:
        # A membership is one user in one team; another pairing is a removal and an addition.
        return [*self.readonly_fields, "team", "user"] if obj is not None else list(self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: Membership, form, change: bool) -> None:
        if change:
            services.membership_change_role(team=obj.team, username=obj.user.username, role=obj.role)
            return
        added = services.membership_add(team=obj.team, username=obj.user.username, role=obj.role)
        obj.pk, obj.created_at = added.pk, added.created_at

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        services.membership_remove(team=obj.team, username=obj.user.username)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        services.memberships_remove(memberships=queryset)


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "current_team"]
    list_select_related = ["user", "current_team"]
    search_fields = ["user__username", "user__email"]
    list_filter = ["current_team"]
    autocomplete_fields = ["user", "current_team"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens by their prefix: the database has no key to show, only its hash (never shown either).

    A token added here is made by teams.services.token_create; its key is shown once, in the message
    after saving, for the operator to hand over.
    """

    list_display = ["prefix", "user", "name", "created_at", "expires_at", "last_used_at"]
    list_select_related = ["user"]
    list_filter = ["created_at", "expires_at", "last_used_at"]
    search_fields = ["prefix", "name", "user__username", "user__email"]
    raw_id_fields = ["user"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        if obj is None:
            return ["user", "name", "expires_at"]
        return ["user", "prefix", "name", "created_at", "expires_at", "last_used_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        # A token belongs to one user for good.
        return [*self.readonly_fields, "user"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: ApiToken, form, change: bool) -> None:
        if change:
            obj.save(update_fields=[name for name in form.changed_data if name in ("name", "expires_at")] or None)
            return
        token, key = services.token_create(user=obj.user, name=obj.name, expires_at=obj.expires_at)
        obj.pk, obj.prefix, obj.digest, obj.created_at = token.pk, token.prefix, token.digest, token.created_at
        self.message_user(
            request,
            _("The key of the new token of %(user)s, shown only this once: %(key)s")
            % {"user": obj.user.get_username(), "key": key},
            messages.WARNING,
        )
