"""Operators' screens: apps and their revisions. A revision is a record (read-only); an app's state is read from
its run, changed only through the services (the settings below, the stop and delete actions). Secrets show
their names only, never their values."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext_lazy as _

from apps import services
from apps.models import App, AppRevision
from easyai_site.admin_utils import ServiceRefusalsMixin
from teams.exceptions import ActionRefused


class RevisionInline(admin.TabularInline):
    model = AppRevision
    extra = 0
    can_delete = False
    show_change_link = True
    fields = [
        "number",
        "kind",
        "entry",
        "command",
        "source",
        "file_count",
        "size",
        "digest",
        "created_by",
        "created_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")

    @admin.display(description=_("files"))
    def file_count(self, revision: AppRevision) -> int:
        return len(revision.files or [])


@admin.register(App)
class AppAdmin(ServiceRefusalsMixin, admin.ModelAdmin):
    list_display = ["name", "team", "kind", "app_state", "status", "owner", "visibility", "last_request_at"]
    list_filter = ["kind", "status", "visibility", "team", "cluster"]
    search_fields = ["name", "team__slug", "owner__username", "job__public_id"]
    list_select_related = ["team", "owner", "cluster", "job"]
    readonly_fields = [
        "team", "name", "owner", "cluster", "kind", "app_state", "status", "url", "revision", "job", "message",
        "env", "secret_names", "shared_users", "last_request_at", "run_requested_at", "startup_seconds",
        "created_at", "updated_at",
    ]  # fmt: skip
    # What may be changed here goes through services.app_update; secrets_encrypted is never a field.
    editable = ["description", "cpu", "memory", "gpu", "image", "visibility", "idle_minutes"]
    fields = [*readonly_fields[:8], *editable, *readonly_fields[8:]]
    inlines = [RevisionInline]
    actions = ["stop_apps", "delete_apps"]

    def get_queryset(self, request):
        # The state reads the run's task (is it healthy?): fetched with the page, not once per row.
        return super().get_queryset(request).prefetch_related("job__tasks")

    def has_add_permission(self, request) -> bool:
        return False  # published from a folder: the pages, the API or the CLI

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a row deleted here would leave its run going: the action below goes through the service

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change) -> None:
        fresh = App.objects.get(pk=obj.pk)
        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        if changed:
            services.app_update(user=request.user, app=fresh, **changed)

    @admin.display(description=_("state"))
    def app_state(self, app: App) -> str:
        return app.get_state_display()

    @admin.display(description=_("secrets"))
    def secret_names(self, app: App) -> str:
        return ", ".join(app.secret_names) or "—"

    @admin.display(description=_("shared with"))
    def shared_users(self, app: App) -> str:
        return ", ".join(sorted(user.username for user in app.shared_with.all())) or "—"

    def _each(self, request, queryset, act, done: str) -> None:
        count = 0
        for app in queryset.select_related("team", "owner", "job"):
            try:
                act(user=request.user, app=app)
            except (ActionRefused, PermissionDenied) as exc:
                self.message_user(request, f"{app}: {exc}", messages.WARNING)
                continue
            count += 1
        self.message_user(request, done % {"n": count}, messages.SUCCESS)

    @admin.action(description=_("Stop the selected apps"), permissions=["change"])
    def stop_apps(self, request, queryset) -> None:
        self._each(request, queryset, services.app_stop, _("%(n)s apps stopped."))

    @admin.action(description=_("Stop and delete the selected apps"), permissions=["change"])
    def delete_apps(self, request, queryset) -> None:
        self._each(request, queryset, services.app_delete, _("%(n)s apps deleted."))


@admin.register(AppRevision)
class AppRevisionAdmin(admin.ModelAdmin):
    list_display = ["app", "number", "kind", "entry", "source", "size", "created_by", "created_at"]
    list_filter = ["kind", "app__team"]
    search_fields = ["app__name", "app__team__slug", "digest", "source"]
    list_select_related = ["app__team", "created_by"]
    readonly_fields = [f.name for f in AppRevision._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
