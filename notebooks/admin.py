from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from easyai_site.admin_utils import SharingAdminMixin
from notebooks import services
from notebooks.models import Notebook, TensorBoard


@admin.register(Notebook)
class NotebookAdmin(SharingAdminMixin, admin.ModelAdmin):
    """Notebooks; the "Object permissions" page shares one with someone outside its team."""

    list_display = ["name", "team", "owner", "kind", "notebook_state", "cluster", "expires_at", "job", "created_at"]
    list_filter = ["kind", "team", "cluster"]
    search_fields = ["name", "owner__username", "team__slug", "job__public_id"]
    list_select_related = ["team", "owner", "cluster", "job"]
    raw_id_fields = ["team", "owner", "cluster", "job"]
    readonly_fields = ["job", "expires_at", "last_activity_at", "created_at", "notebook_state"]
    actions = ["stop_notebooks", "delete_notebooks"]

    def get_actions(self, request):
        # Deleting rows directly would leave their servers running: the action below goes through the service.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("state"))
    def notebook_state(self, notebook: Notebook) -> str:
        # The list has no task rows prefetched: "running" here means its job runs.
        if notebook.job is None or notebook.job.is_final:
            return _("stopped")
        return notebook.job.get_state_display()

    @admin.action(description=_("Stop the selected notebooks"))
    def stop_notebooks(self, request, queryset) -> None:
        stopped = 0
        for notebook in queryset.select_related("job"):
            try:
                services.notebook_stop(notebook=notebook, actor=request.user)
            except services.NotebookActionRefused:
                continue
            stopped += 1
        self.message_user(request, _("%(n)s notebooks stopped.") % {"n": stopped}, messages.SUCCESS)

    @admin.action(description=_("Stop and delete the selected notebooks"), permissions=["change"])
    def delete_notebooks(self, request, queryset) -> None:
        count = 0
        for notebook in queryset.select_related("job"):
            services.notebook_delete(notebook=notebook, actor=request.user)
            count += 1
        self.message_user(request, _("%(n)s notebooks deleted.") % {"n": count}, messages.SUCCESS)


@admin.register(TensorBoard)
class TensorBoardAdmin(admin.ModelAdmin):
    list_display = ["job", "team", "owner", "sources_key", "created_at"]
    list_select_related = ["job", "team", "owner"]
    search_fields = ["job__public_id", "sources_key", "owner__username"]
    raw_id_fields = ["team", "owner", "cluster", "job", "sources"]
    readonly_fields = ["sources_key", "created_at"]
