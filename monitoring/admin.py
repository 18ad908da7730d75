"""Monitoring in the admin: prices per cluster (platform admins set them) and each job's accounting (read-only)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from easyai_site.admin_utils import CappedCountPaginator
from monitoring.models import JobUsage, Price

MAX_GPU_MODELS = 100


class PriceForm(forms.ModelForm):
    class Meta:
        model = Price
        fields = ["cluster", "currency", "core_hour", "gib_hour", "gpu_hour", "gpu_hour_by_model"]
        help_texts = {
            "gpu_hour_by_model": _(
                'GPU model → price per GPU-hour, e.g. {"A100-SXM4-80GB": 3.2, "T4": 0.5}. The model is the '
                "nvidia.com/gpu.product a job's node selector asks for, else the cluster's settings gpu_models "
                "(node → model) or gpu_model; other GPUs pay the price per GPU-hour."
            ),
            "currency": _("A code such as USD or EUR, shown with the costs."),
        }

    def _not_negative(self, name: str) -> Decimal:
        value = self.cleaned_data[name]
        if value is not None and value < 0:
            raise forms.ValidationError(_("A price cannot be negative."))
        return value

    def clean_core_hour(self) -> Decimal:
        return self._not_negative("core_hour")

    def clean_gib_hour(self) -> Decimal:
        return self._not_negative("gib_hour")

    def clean_gpu_hour(self) -> Decimal:
        return self._not_negative("gpu_hour")

    def clean_currency(self) -> str:
        currency = (self.cleaned_data["currency"] or "").strip().upper()
        if not currency.isalpha():
            raise forms.ValidationError(_("Letters only, such as USD or EUR."))
        return currency

    def clean_gpu_hour_by_model(self) -> dict[str, float]:
        value = self.cleaned_data["gpu_hour_by_model"]
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError(_('A mapping of GPU model to price, such as {"A100": 3.2}.'))
        if len(value) > MAX_GPU_MODELS:
            raise forms.ValidationError(_("At most %(count)s GPU models.") % {"count": MAX_GPU_MODELS})
        prices: dict[str, float] = {}
        for model, price in value.items():
            if not model.strip():
                raise forms.ValidationError(_("A GPU model name cannot be blank."))
            try:
                number = Decimal(str(price)) if not isinstance(price, bool) else Decimal("NaN")
            except (InvalidOperation, ValueError):
                number = Decimal("NaN")
            if not number.is_finite():
                raise forms.ValidationError(
                    _("%(model)s: %(price)r is not a number.") % {"model": model, "price": price}
                )
            if number < 0:
                raise forms.ValidationError(_("%(model)s: a price cannot be negative.") % {"model": model})
            prices[model.strip()] = float(number)
        return prices


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    form = PriceForm
    list_display = ["cluster", "currency", "core_hour", "gib_hour", "gpu_hour", "gpu_models", "updated_at"]
    list_select_related = ["cluster"]
    readonly_fields = ["updated_at"]

    @admin.display(description=_("GPU models priced"))
    def gpu_models(self, price: Price) -> str:
        return ", ".join(sorted(price.gpu_hour_by_model or {})) or "—"


@admin.register(JobUsage)
class JobUsageAdmin(admin.ModelAdmin):
    """Written by the accounting pass alone (monitoring/accounting.py): shown, never edited."""

    list_display = [
        "job", "team", "owner", "cluster", "day", "core_hours_requested", "core_hours_used", "gib_hours_requested",
        "gib_hours_used", "gpu_hours_requested", "gpu_hours_used", "cost", "currency", "closed",
    ]  # fmt: skip
    list_select_related = ["job", "team", "owner", "cluster"]
    list_filter = ["closed", "cluster", "day"]
    search_fields = ["job__public_id", "job__name", "owner__username", "team__slug"]
    raw_id_fields = ["job", "team", "owner", "cluster"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    ordering = ["-day", "-job_id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
