"""Forms of the job pages. They render and parse input; the spec module and the services decide."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from clusters.models import Cluster
from jobs import spec as job_spec
from jobs.models import Framework, Priority

# The simple form's fields are the spec module's: from_form takes them and to_form gives them back.
SPEC_FORM_FIELDS: tuple[str, ...] = tuple(job_spec.FORM_FIELDS)
# Shown open; the rest sit under "More options" so the first look stays short.
MAIN_FIELDS = (
    "name",
    "framework",
    "image",
    "command",
    "workers",
    "cpu",
    "memory",
    "gpu",
    "priority",
    "experiment",
    "cluster",
)


class _Bootstrap:
    """Gives every widget Bootstrap's classes, so templates render fields plainly."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():  # type: ignore[attr-defined]
            css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            field.widget.attrs.setdefault("class", css)


def _framework_choices() -> list[tuple[str, str]]:
    # Only the frameworks a user may submit: notebooks and TensorBoard are started by their own pages.
    labels = dict(Framework.choices)
    return [(name, labels.get(name, name)) for name in job_spec.FRAMEWORK_ROLES]


HEALTH_LABEL_CHARS = 80


def _cluster_label(name: str, default: bool, healthy: bool, message: str) -> str:
    label = f"{name} ({_('default')})" if default else name
    if healthy:
        return label
    reason = " ".join(message.split())
    if len(reason) > HEALTH_LABEL_CHARS:
        reason = reason[: HEALTH_LABEL_CHARS - 1] + "…"
    return f"{label} — {_('unhealthy')}: {reason}" if reason else f"{label} — {_('unhealthy')}"


class JobSpecForm(_Bootstrap, forms.Form):
    """The simple side of the submit page. Every field is text: ``jobs.spec`` is the only validator,
    so a value the spec refuses is shown as typed, with the spec's error next to it."""

    name = forms.CharField(label=_("Name"), required=False, help_text=_("lowercase letters, digits and '-'"))
    framework = forms.CharField(label=_("Framework"), required=False, widget=forms.Select)
    image = forms.CharField(label=_("Image"), required=False, help_text=_("e.g. pytorch/pytorch:2.3"))
    command = forms.CharField(
        label=_("Command"),
        required=False,
        help_text=_("run by /bin/sh in every task"),
        widget=forms.Textarea(attrs={"rows": 3, "class": "form-control font-monospace", "spellcheck": "false"}),
    )
    workers = forms.CharField(label=_("Workers"), required=False)
    cpu = forms.CharField(label=_("CPU"), required=False, help_text=_("e.g. 2 or 500m"))
    memory = forms.CharField(label=_("Memory"), required=False, help_text=_("e.g. 4Gi"))
    gpu = forms.CharField(label=_("GPUs"), required=False)
    priority = forms.CharField(label=_("Priority"), required=False, widget=forms.Select(choices=Priority.choices))
    experiment = forms.CharField(label=_("Experiment"), required=False, help_text=_("created if it does not exist"))
    cluster = forms.CharField(label=_("Cluster"), required=False, widget=forms.Select)
    team = forms.CharField(label=_("Team"), required=False, widget=forms.Select)
    working_dir = forms.CharField(label=_("Working directory"), required=False, help_text=_("an absolute path"))
    queue = forms.CharField(label=_("Scheduler queue"), required=False)
    timeout = forms.CharField(label=_("Timeout"), required=False, help_text=_("e.g. 2h or 30m; stopped after it"))
    max_retries = forms.CharField(label=_("Retries on failure"), required=False)
    pre_job = forms.CharField(
        label=_("Previous job"), required=False, help_text=_("a job id: its model_dir is mounted as pre_model_dir")
    )
    volumes = forms.CharField(label=_("Volumes"), required=False, help_text=_("names, separated by commas"))
    env = forms.CharField(
        label=_("Environment"),
        required=False,
        help_text=_("one NAME=value a line"),
        widget=forms.Textarea(attrs={"rows": 3, "class": "form-control font-monospace", "spellcheck": "false"}),
    )

    def __init__(
        self, *args, teams: list[tuple[str, str]] | None = None, experiments: list[str] | None = None, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["framework"].widget.choices = _framework_choices()
        clusters = list(
            Cluster.objects.filter(enabled=True)
            .order_by("name")
            .values_list("name", "is_default", "healthy", "health_message")
        )
        self.fields["cluster"].widget.choices = [("", _("the default cluster"))] + [
            (name, _cluster_label(name, default, healthy, message)) for name, default, healthy, message in clusters
        ]
        # Jobs sent to an unhealthy cluster are accepted but wait there until it answers again.
        self.unhealthy_clusters = [
            (name, message or _("no reason recorded")) for name, _default, healthy, message in clusters if not healthy
        ]
        if self.unhealthy_clusters:
            self.fields["cluster"].widget.attrs["aria-describedby"] = "cluster-health"
        self.fields["team"].widget.choices = [("", _("my current team"))] + [
            (slug, f"{name} ({slug})") for slug, name in (teams or [])
        ]
        for name in ("workers", "gpu", "max_retries"):
            self.fields[name].widget.attrs["inputmode"] = "numeric"
        if experiments:
            self.fields["experiment"].widget.attrs["list"] = "experiment-names"
        self.experiment_names = experiments or []

    @property
    def main_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in MAIN_FIELDS]

    @property
    def more_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in SPEC_FORM_FIELDS if name not in MAIN_FIELDS]

    @property
    def more_open(self) -> bool:
        """Whether "More options" starts open: when one of its fields has a value or an error."""
        # to_form always gives max_retries ("0"): a zero is the default, not something the user set.
        return any(field.errors or (field.value() or "0") != "0" for field in self.more_fields)

    def add_spec_errors(self, errors: dict[str, list[str]]) -> None:
        """Put each spec error at the field that shows it; the page lists every error by its path too."""
        if not hasattr(self, "cleaned_data"):
            self.full_clean()
        for field, messages in job_spec.form_errors(errors).items():
            if field in self.fields:
                self.add_error(field, [ValidationError(message) for message in messages])
                widget = self.fields[field].widget
                widget.attrs["class"] = f"{widget.attrs.get('class', '')} is-invalid".strip()


class ExperimentForm(_Bootstrap, forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
