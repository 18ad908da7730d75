"""Operators' admin for users, teams, memberships, quotas and profiles.

Quota changes go through teams.services so cluster provisioning hears about
them; a team created here has no admin until an operator adds one inline.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from teams import services
from teams.models import Membership, Profile, Quota, Team
from teams.templatetags.units import cores, gib

User = get_user_model()


class MembershipOfUserInline(admin.TabularInline):
    model = Membership
    fk_name = "user"
    extra = 0
    autocomplete_fields = ["team"]
    fields = ["team", "role", "created_at"]
    readonly_fields = ["created_at"]


class MembershipOfTeamInline(admin.TabularInline):
    model = Membership
    fk_name = "team"
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).select_related("user")


class QuotaInline(admin.TabularInline):
    model = Quota
    extra = 0
    raw_id_fields = ["cluster"]
    fields = ["cluster", "cpu_milli", "memory_bytes", "gpu"]


if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    inlines = [MembershipOfUserInline]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "member_count", "created_at"]
    search_fields = ["slug", "name", "description"]
    list_filter = ["created_at"]
    readonly_fields = ["created_at"]
    inlines = [MembershipOfTeamInline, QuotaInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Team | None = None) -> list[str]:
        # The slug names the team's namespace on every cluster: fixed once created.
        return [*self.readonly_fields, "slug"] if obj is not None else list(self.readonly_fields)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return super().get_queryset(request).annotate(member_count=Count("memberships", distinct=True))

    @admin.display(description=_("members"), ordering="member_count")
    def member_count(self, team: Team) -> int:
        return team.member_count

    def save_model(self, request: HttpRequest, obj: Team, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            services.team_notify_changed(team_id=obj.pk)

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        if formset.model is not Quota:
            super().save_formset(request, form, formset, change)
            return
        quotas = formset.save(commit=False)
        for quota in formset.deleted_objects:
            services.quota_delete(quota=quota)
        for quota in quotas:
            services.quota_save(quota=quota)
        formset.save_m2m()


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["team", "user", "role", "created_at"]
    list_filter = ["role", "team"]
    list_select_related = ["team", "user"]
    search_fields = ["team__slug", "team__name", "user__username", "user__email"]
    autocomplete_fields = ["team", "user"]


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = ["team", "cluster", "cpu_cores", "memory_gib", "gpu"]
    list_filter = ["cluster"]
    list_select_related = ["team", "cluster"]
    search_fields = ["team__slug", "team__name", "cluster__name"]
    autocomplete_fields = ["team"]
    raw_id_fields = ["cluster"]

    @admin.display(description=_("CPU (cores)"), ordering="cpu_milli")
    def cpu_cores(self, quota: Quota) -> str:
        return cores(quota.cpu_milli)

    @admin.display(description=_("memory (GiB)"), ordering="memory_bytes")
    def memory_gib(self, quota: Quota) -> str:
        return gib(quota.memory_bytes)

    def save_model(self, request: HttpRequest, obj: Quota, form, change: bool) -> None:
        services.quota_save(quota=obj)

    def delete_model(self, request: HttpRequest, obj: Quota) -> None:
        services.quota_delete(quota=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Quota]) -> None:
        for quota in queryset:
            services.quota_delete(quota=quota)


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "current_team"]
    list_select_related = ["user", "current_team"]
    search_fields = ["user__username", "user__email"]
    list_filter = ["current_team"]
    autocomplete_fields = ["user", "current_team"]
