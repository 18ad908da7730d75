"""Clusters in the admin: local hosts and Kubernetes clusters, their kubeconfig (write-only) and health."""

from __future__ import annotations

from typing import Any

import yaml
from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from clusters import services
from clusters.backends.kubernetes.client import kubeconfig_server
from clusters.models import Cluster, Quota
from easyai_site.admin_utils import team_inline
from teams.templatetags.units import cores, gib

MAX_KUBECONFIG_BYTES = 1024 * 1024


def kubeconfig_status(cluster: Cluster) -> str:
    """What the admin may see of a stored kubeconfig: whether it is set, and its server."""
    if not cluster.kubeconfig_encrypted:
        return str(_("not set"))
    try:
        server = kubeconfig_server(cluster.kubeconfig)
    except Exception:  # a key rotated away: say so rather than break the page
        return str(_("set (cannot be decrypted with the current EASYAI_FIELD_KEY)"))
    return str(_("set (server %(server)s)") % {"server": server or "?"})


def isolation_status(cluster: Cluster) -> str:
    """What the admin reads about a local cluster's task isolation."""
    if cluster.kind != Cluster.Kind.LOCAL:
        return str(_("pods (Kubernetes)"))
    problem = cluster.isolation_problem
    if not problem:
        return str(_("isolated: each task in a sandbox of its own, as an unprivileged user"))
    who = (
        _("everyone may still submit (allow_unisolated)")
        if cluster.unisolated_for_everyone
        else _("only platform admins may submit jobs here until it is fixed or allow_unisolated is set")
    )
    return str(_("NOT isolated: tasks can read the portal's secrets and other users' files (%(why)s); %(who)s")) % {
        "why": problem,
        "who": who,
    }


class ClusterAdminForm(forms.ModelForm):
    kubeconfig_file = forms.FileField(
        label=_("kubeconfig file"), required=False, help_text=_("Upload a kubeconfig, or paste it below.")
    )
    kubeconfig_text = forms.CharField(
        label=_("kubeconfig"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "autocomplete": "off", "spellcheck": "false"}),
        help_text=_("Stored encrypted; never shown again. Leave empty to keep the current one."),
    )

    class Meta:
        model = Cluster
        fields = ("name", "kind", "enabled", "is_default", "description", "settings", "in_cluster",
                  "namespace_prefix", "nfs_server", "nfs_path", "gpu_resource_name", "scheduler",
                  "image_pull_secrets", "ingress_host")  # fmt: skip

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        upload, text = data.get("kubeconfig_file"), (data.get("kubeconfig_text") or "").strip()
        if upload and text:
            raise forms.ValidationError(_("Upload a kubeconfig or paste one, not both."))
        if upload:
            if upload.size > MAX_KUBECONFIG_BYTES:
                raise forms.ValidationError({"kubeconfig_file": _("A kubeconfig is not that large.")})
            try:
                text = upload.read().decode("utf-8").strip()
            except UnicodeDecodeError:
                raise forms.ValidationError({"kubeconfig_file": _("The file is not UTF-8 text.")})
        if text:
            field = "kubeconfig_file" if upload else "kubeconfig_text"
            try:
                parsed = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise forms.ValidationError({field: _("Not YAML: %(error)s") % {"error": exc}})
            if not isinstance(parsed, dict) or not parsed.get("clusters") or not parsed.get("users"):
                raise forms.ValidationError({field: _("A kubeconfig has clusters, users and contexts.")})
        data["kubeconfig_new"] = text
        kind, in_cluster = data.get("kind"), data.get("in_cluster")
        has_one = bool(text) or bool(self.instance.kubeconfig_encrypted)
        if kind == Cluster.Kind.KUBERNETES and not in_cluster and not has_one:
            raise forms.ValidationError(_("A Kubernetes cluster needs a kubeconfig, or 'use in-cluster config'."))
        return data

    def save(self, commit: bool = True) -> Cluster:
        cluster = super().save(commit=False)
        if self.cleaned_data.get("kubeconfig_new"):
            cluster.kubeconfig = self.cleaned_data["kubeconfig_new"]  # encrypted by the model's setter
        if commit:
            cluster.save()
            self.save_m2m()
        return cluster


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    form = ClusterAdminForm
    list_display = ("name", "kind", "enabled", "is_default", "scheduler", "healthy", "server_version",
                    "health_checked_at")  # fmt: skip
    list_filter = ("kind", "enabled", "healthy", "scheduler")
    search_fields = ("name", "description")
    readonly_fields = ("kubeconfig_status", "task_isolation", "healthy", "health_message", "health_checked_at",
                       "server_version", "created_at")  # fmt: skip
    actions = ("check_connection", "provision_teams")
    fieldsets = (
        (None, {"fields": ("name", "kind", "enabled", "is_default", "description", "task_isolation")}),
        (
            _("Kubernetes connection"),
            {"fields": ("kubeconfig_status", "kubeconfig_file", "kubeconfig_text", "in_cluster", "namespace_prefix")},
        ),
        (
            _("Kubernetes scheduling and storage"),
            {
                "fields": (
                    "scheduler",
                    "gpu_resource_name",
                    "nfs_server",
                    "nfs_path",
                    "image_pull_secrets",
                    "ingress_host",
                )
            },  # fmt: skip
        ),
        (
            _("Settings"),
            {
                "fields": ("settings",),
                "description": _(
                    "Local: capacity overrides (cpu_milli, memory_bytes, gpu); task isolation: isolation (default "
                    "true), bwrap (the bubblewrap program), sandbox_user and sandbox_group (default 65534), "
                    "sandbox_read_only (more host paths tasks see read-only), allow_unisolated (default false: "
                    "where tasks cannot be isolated only platform admins may submit). Kubernetes: "
                    "keep_finished_minutes (how long finished jobs' objects stay, default 0), request_timeout "
                    "(seconds, default 30). Alerts, both kinds: idle_gpu_threshold (percent, default 5), "
                    "idle_gpu_minutes (default 30; 0: off), idle_gpu_action (alert, or stop: the idle job is "
                    "stopped too), pending_alert_minutes (default 30; 0: off)."
                ),
            },
        ),
        (_("Health"), {"fields": ("healthy", "health_message", "health_checked_at", "server_version", "created_at")}),
    )

    @admin.display(description=_("kubeconfig"))
    def kubeconfig_status(self, cluster: Cluster) -> str:
        return kubeconfig_status(cluster)

    @admin.display(description=_("task isolation"))
    def task_isolation(self, cluster: Cluster) -> str:
        return isolation_status(cluster)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None):
        cluster = self.get_object(request, object_id)
        if cluster is not None and request.method == "GET" and cluster.isolation_problem:
            self.message_user(request, f"{cluster.name}: {isolation_status(cluster)}", messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None):
        if request.method == "GET":
            for cluster in Cluster.objects.filter(kind=Cluster.Kind.LOCAL, enabled=True):
                if cluster.isolation_problem:
                    self.message_user(request, f"{cluster.name}: {isolation_status(cluster)}", messages.WARNING)
        return super().changelist_view(request, extra_context)

    def save_model(self, request: HttpRequest, obj: Cluster, form: forms.ModelForm, change: bool) -> None:
        if services.cluster_save(cluster=obj):
            self.message_user(
                request,
                _("%(name)s: provisioning of every team (namespace, quota, queue) queued.") % {"name": obj.name},
                messages.INFO,
            )

    @admin.action(description=_("Check connection"))
    def check_connection(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        from clusters.backends.kubernetes.health import check_connection

        for cluster in queryset:
            if cluster.kind != Cluster.Kind.KUBERNETES:
                self.message_user(request, f"{cluster.name}: a local cluster has no connection to check.",
                                  messages.INFO)  # fmt: skip
                continue
            report = check_connection(cluster)
            level = messages.ERROR if not report.ok else messages.WARNING if report.warnings else messages.SUCCESS
            self.message_user(request, f"{cluster.name}: {report.summary()}", level)

    @admin.action(description=_("Provision every team (namespace, quota, queue)"))
    def provision_teams(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        for cluster in queryset.filter(kind=Cluster.Kind.KUBERNETES, enabled=True):
            services.cluster_provision_later(cluster_id=cluster.pk, name=cluster.name)
            self.message_user(request, f"{cluster.name}: provisioning of every team queued.", messages.INFO)


# --- team quotas per cluster ---------------------------------------------------------------


class QuotaFormSet(BaseInlineFormSet):
    """A team page's quotas, saved and deleted through the services, so provisioning hears of each change."""

    def save(self, commit: bool = True) -> list[Quota]:
        quotas = super().save(commit=False)
        for quota in self.deleted_objects:
            services.quota_delete(quota=quota)
        for quota in quotas:
            services.quota_save(quota=quota)
        self.save_m2m()
        return quotas


@team_inline
class QuotaInline(admin.TabularInline):
    model = Quota
    formset = QuotaFormSet
    extra = 0
    raw_id_fields = ["cluster"]
    fields = ["cluster", "cpu_milli", "memory_bytes", "gpu"]


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
