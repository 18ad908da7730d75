"""Forms of the serving pages. They render and parse input; the services decide (and name the field)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from serving.models import FORMAT_CHOICES


class _Styled(forms.Form):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            field.widget.attrs.setdefault("class", css)

    def problems(self) -> dict[str, list[str]]:
        return {name: [str(e) for e in errors] for name, errors in self.errors.items()}


class RegisterForm(_Styled):
    name = forms.CharField(label=_("Model"), max_length=63, help_text=_("A new or existing model of the team."))
    path = forms.CharField(label=_("Folder"), max_length=1024, required=False, initial="model_dir")
    archive = forms.FileField(label=_("Zip archive of the model's folder"), required=False)
    format = forms.ChoiceField(label=_("Format"), choices=FORMAT_CHOICES)
    metrics = forms.CharField(
        label=_("Metrics (JSON)"), required=False, help_text=_('Besides a metrics.json in the folder: {"accuracy": 0.93}')
    )
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, with_job: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if with_job:
            del self.fields["archive"]
        else:
            del self.fields["path"]
            self.fields["archive"].required = True


class ServiceForm(_Styled):
    name = forms.CharField(label=_("Name"), max_length=45, help_text=_("Lowercase letters, digits and '-'."))
    model = forms.CharField(label=_("Model"), max_length=63)
    version = forms.CharField(label=_("Version"), required=False, max_length=10, help_text=_("Empty: the latest."))
    alias = forms.CharField(label=_("or follow the alias"), required=False, max_length=63)
    cpu = forms.CharField(label=_("CPU"), initial="1", max_length=32)
    memory = forms.CharField(label=_("Memory"), initial="2Gi", max_length=32)
    gpu = forms.CharField(label=_("GPUs"), initial="0", max_length=3)
    min_replicas = forms.CharField(label=_("Min replicas"), initial="1", max_length=3)
    max_replicas = forms.CharField(label=_("Max replicas"), initial="1", max_length=3)
    cluster = forms.CharField(label=_("Cluster"), required=False, max_length=63, help_text=_("Empty: the default."))
    public = forms.BooleanField(label=_("Public (no token needed; team admins)"), required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["public"].widget.attrs["class"] = "form-check-input"


class CanaryForm(_Styled):
    version = forms.CharField(label=_("Canary version"), max_length=10)
    percent = forms.CharField(label=_("Traffic (%)"), max_length=3, initial="10")
