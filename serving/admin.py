"""Operators' screens: registered models and their versions, alias history, pull tokens, inference services and
their revisions. Versions, moves and revisions are records: read-only here; actions go through the services."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from easyai_site.admin_utils import ServiceRefusalsMixin
from serving import services
from serving.models import AliasMove, InferenceService, ModelAlias, ModelVersion, PullToken, RegisteredModel, Revision
from teams.exceptions import ActionRefused


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class VersionInline(_ReadOnlyInline):
    model = ModelVersion
    fields = ["number", "format", "size", "digest", "source_job_public_id", "registered_by", "created_at"]
    readonly_fields = fields


class AliasInline(_ReadOnlyInline):
    model = ModelAlias
    fields = ["name", "version", "updated_at"]
    readonly_fields = fields


@admin.register(RegisteredModel)
class RegisteredModelAdmin(ServiceRefusalsMixin, admin.ModelAdmin):
    list_display = ["name", "team", "owner", "updated_at"]
    list_filter = ["team"]
    search_fields = ["name", "team__slug", "owner__username"]
    list_select_related = ["team", "owner"]
    raw_id_fields = ["team", "owner"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [VersionInline, AliasInline]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # models_delete refuses while a service uses one, and removes the files: the action below


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["model", "number", "format", "size", "source_job_public_id", "registered_by", "created_at"]
    list_filter = ["format", "model__team"]
    search_fields = ["model__name", "model__team__slug", "source_job_public_id", "digest"]
    list_select_related = ["model__team", "registered_by"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AliasMove)
class AliasMoveAdmin(admin.ModelAdmin):
    list_display = ["model", "alias", "from_number", "to_number", "moved_by", "moved_at"]
    list_filter = ["model__team"]
    search_fields = ["model__name", "alias", "moved_by__username"]
    list_select_related = ["model__team", "moved_by"]
    readonly_fields = [f.name for f in AliasMove._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PullToken)
class PullTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "hint", "created_by", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["team", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "team__slug", "hint"]
    list_select_related = ["team", "created_by"]
    readonly_fields = ["team", "name", "hint", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False  # made on the API (the key is shown once, to its maker)

    @admin.action(description=_("Revoke the selected pull tokens"))
    def revoke(self, request, queryset) -> None:
        count = 0
        for token in queryset.select_related("team"):
            services.pull_token_revoke(user=request.user, token=token)
            count += 1
        self.message_user(request, _("%(n)s pull tokens revoked.") % {"n": count}, messages.SUCCESS)


class RevisionInline(_ReadOnlyInline):
    model = Revision
    fields = ["number", "version", "state", "job", "cluster_revision", "message", "created_at", "ready_at", "ended_at"]
    readonly_fields = fields


@admin.register(InferenceService)
class InferenceServiceAdmin(ServiceRefusalsMixin, admin.ModelAdmin):
    list_display = ["name", "team", "model", "service_state", "canary_percent", "cluster", "requests", "owner"]
    list_filter = ["team", "cluster", "public"]
    search_fields = ["name", "team__slug", "model__name", "owner__username"]
    list_select_related = ["team", "model", "cluster", "owner"]
    readonly_fields = [
        "team", "name", "cluster", "model", "version", "alias", "canary_version", "canary_percent", "primary",
        "canary", "next", "message", "cluster_url", "address", "grpc_address", "requests", "errors",
        "latency_ms_total", "owner",
        "created_at",
    ]  # fmt: skip
    fields = [*readonly_fields[:8], "cpu", "memory", "gpu", "min_replicas", "max_replicas", "public", *readonly_fields[8:]]
    inlines = [RevisionInline]
    actions = ["promote", "rollback", "delete_services"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change) -> None:
        fresh = InferenceService.objects.get(pk=obj.pk)
        changed = {name: getattr(obj, name) for name in form.changed_data}
        services.service_update(user=request.user, service=fresh, **changed)

    @admin.display(description=_("state"))
    def service_state(self, service: InferenceService) -> str:
        return service.get_state_display()

    def _each(self, request, queryset, act, done: str) -> None:
        count = 0
        for service in queryset:
            try:
                act(user=request.user, service=service)
            except ActionRefused as exc:
                self.message_user(request, f"{service}: {exc}", messages.WARNING)
                continue
            count += 1
        self.message_user(request, done % {"n": count}, messages.SUCCESS)

    @admin.action(description=_("Promote the canary of the selected services"))
    def promote(self, request, queryset) -> None:
        self._each(request, queryset, services.service_promote, _("%(n)s canaries promoted."))

    @admin.action(description=_("Roll back the selected services"))
    def rollback(self, request, queryset) -> None:
        self._each(request, queryset, services.service_rollback, _("%(n)s services rolled back."))

    @admin.action(description=_("Stop and delete the selected services"), permissions=["change"])
    def delete_services(self, request, queryset) -> None:
        self._each(request, queryset, services.service_delete, _("%(n)s services deleted."))
