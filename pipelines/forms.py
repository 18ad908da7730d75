"""The pipelines pages' forms: the editor's source, a run's params (one typed input per param of the spec), a
schedule.

The forms check what a browser can get wrong (a number that is not one, a blank required field); the services
(``pipeline_save``, ``run_submit``, ``schedule_save``) decide the rest, and their ``ValidationError`` comes back
onto the field it names (``add_problems``).
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from pipelines.models import Concurrency

MAX_SOURCE = 200_000  # characters of YAML: a pipeline of hundreds of steps fits


class ProblemsMixin:
    """A service's problems (path -> messages) on the fields they name; the rest on the form."""

    problem_fields: dict[str, str] = {}

    def add_problems(self, problems: dict[str, list[str]]) -> None:
        for path, messages in problems.items():
            field = self.field_for(path)
            for message in messages:
                if field is None:
                    text = message if path in ("__all__", "") else f"{path}: {message}"
                    self.add_error(None, text)
                else:
                    self.add_error(field, message)

    def field_for(self, path: str) -> str | None:
        if path in self.fields:
            return path
        return self.problem_fields.get(path)


class SourceForm(ProblemsMixin, forms.Form):
    """The editor: the pipeline's YAML (or JSON). The spec's own problems are listed by path above the editor."""

    source = forms.CharField(
        label=_("Pipeline (YAML)"),
        max_length=MAX_SOURCE,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 30, "spellcheck": "false", "class": "form-control font-monospace"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spec_problems: dict[str, list[str]] = {}

    def add_problems(self, problems: dict[str, list[str]]) -> None:
        # Every path of the spec is a problem of the source: kept by path for the list above the editor.
        self.spec_problems = problems
        self.add_error("source", _("The pipeline has problems; each is listed with its path."))


def _param_field(name: str, decl: dict) -> forms.Field:
    kind = decl.get("type", "string")
    default = decl.get("default")
    required = default is None
    label = name
    if kind == "int":
        return forms.IntegerField(label=label, required=required, initial=default)
    if kind == "float":
        return forms.FloatField(
            label=label, required=required, initial=default, widget=forms.NumberInput(attrs={"step": "any"})
        )
    if kind == "bool":
        return forms.BooleanField(label=label, required=False, initial=bool(default))
    if kind == "list":
        return forms.CharField(
            label=label,
            required=required,
            initial=json.dumps(default) if default is not None else "",
            help_text=_('A JSON list, such as ["a", "b"].'),
        )
    return forms.CharField(label=label, required=required, initial=default, strip=False)


class RunForm(ProblemsMixin, forms.Form):
    """A run's params: one input of its type per param of the version's spec, its default filled in."""

    def __init__(self, *args: Any, spec: dict, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "params")
        super().__init__(*args, **kwargs)
        self.declared = dict(spec.get("params") or {})
        for name, decl in self.declared.items():
            field = _param_field(name, decl)
            field.widget.attrs.setdefault("class", "form-check-input" if decl.get("type") == "bool" else "form-control")
            field.widget.attrs["data-param-type"] = decl.get("type", "string")
            field.param_type = decl.get("type", "string")
            self.fields[name] = field

    def field_for(self, path: str) -> str | None:
        if path.startswith("params."):
            path = path.removeprefix("params.")
        return path if path in self.fields else None

    def params(self) -> dict[str, Any]:
        """The values to run with: blank optional inputs are left out (their defaults apply)."""
        values: dict[str, Any] = {}
        for name, decl in self.declared.items():
            value = self.cleaned_data.get(name)
            if decl.get("type") == "list" and isinstance(value, str) and value.strip():
                try:
                    value = json.loads(value)
                except ValueError:
                    self.add_error(name, _('Must be a JSON list, such as ["a", "b"].'))
                    continue
            if value is None or value == "":
                continue
            values[name] = value
        return values


class ScheduleForm(ProblemsMixin, forms.Form):
    """A new schedule of the pipeline's latest version."""

    name = forms.SlugField(label=_("Name"), max_length=40)
    cron = forms.CharField(label=_("Cron"), max_length=100, help_text=_("Such as 0 3 * * * (03:00 every day)."))
    timezone = forms.CharField(label=_("Timezone"), max_length=64, initial="UTC")
    concurrency = forms.ChoiceField(label=_("Concurrency"), choices=Concurrency.choices, initial=Concurrency.ALLOW)
    max_active = forms.IntegerField(label=_("Most active runs"), min_value=1, max_value=100, initial=1)
    catch_up = forms.BooleanField(
        label=_("Catch up"), required=False, initial=True, help_text=_("Make runs missed while the portal was down.")
    )
    params = forms.CharField(
        label=_("Params"),
        required=False,
        help_text=_('A JSON mapping, such as {"lr": 0.01}; the pipeline\'s defaults fill in the rest.'),
        widget=forms.TextInput(attrs={"class": "font-monospace"}),
    )

    def clean_params(self) -> dict:
        text = self.cleaned_data.get("params") or ""
        if not text.strip():
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            raise forms.ValidationError(_('Must be a JSON mapping, such as {"lr": 0.01}.')) from None
        if not isinstance(value, dict):
            raise forms.ValidationError(_('Must be a JSON mapping, such as {"lr": 0.01}.'))
        return value

    def field_for(self, path: str) -> str | None:
        if path.startswith("params."):
            return "params"
        return path if path in self.fields else None

    def data_for_service(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.fields}
