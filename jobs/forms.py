"""Forms of the job pages. They render and parse input; the spec module and the services decide."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from clusters.models import Cluster
from jobs import spec as job_spec
from jobs.models import Framework, Priority
from jobs.spec import LEADER_ROLE, REQUIRED_ROLES, _yaml_command, validate

# --- the simple form's mapping to and from a spec -------------------------------------------------


FORM_FIELDS = (
    "name", "team", "experiment", "cluster", "framework", "image", "command", "working_dir", "workers",
    "cpu", "memory", "gpu", "priority", "queue", "timeout", "max_retries", "pre_job", "volumes", "env",
)  # fmt: skip
_FORM_TEXT = (
    "name",
    "team",
    "experiment",
    "cluster",
    "framework",
    "image",
    "working_dir",
    "priority",
    "timeout",
    "pre_job",
)


def _form_int(text: str) -> int | str:
    """A whole number when it is one; otherwise the text, for validate to name the problem."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else text


def from_form(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Flat form fields -> a raw spec for validate: ``workers`` tasks of the worker role, plus one leader
    (master, chief or launcher) where the framework has one, all with the same resources."""

    def get(name: str) -> str:
        value = fields.get(name)
        return value.strip() if isinstance(value, str) else ""

    spec: dict[str, Any] = {name: get(name) for name in _FORM_TEXT if get(name)}
    if get("command"):
        spec["command"] = get("command")
    if get("max_retries"):
        spec["max_retries"] = _form_int(get("max_retries"))
    if get("queue"):
        spec["scheduling"] = {"queue": get("queue")}
    if get("volumes"):
        spec["volumes"] = re.split(r"[\s,]+", get("volumes"))
    if get("env"):
        env: dict[str, Any] = {}
        for line in get("env").splitlines():
            key, equals, value = line.strip().partition("=")
            if key or equals:
                env[key.strip()] = value if equals else None  # a line without '=' is reported by validate
        spec["env"] = env
    resources: dict[str, Any] = {name: get(name) for name in ("cpu", "memory") if get(name)}
    if get("gpu"):
        resources["gpu"] = _form_int(get("gpu"))
    leader = LEADER_ROLE.get(get("framework"))
    # With a leader, no workers is a valid single-task job; without one, the worker role is the job.
    default_workers = 0 if leader and "worker" not in REQUIRED_ROLES.get(get("framework"), ()) else 1
    workers = _form_int(get("workers")) if get("workers") else default_workers
    roles: dict[str, Any] = {}
    if leader:
        roles[leader] = {"replicas": 1, **resources}
    if workers != 0 or not leader:
        roles["worker"] = {"replicas": workers, **resources}
    spec["roles"] = roles
    return spec


def _form_problems(spec: dict[str, Any]) -> list[str]:
    """What a normalized spec holds that the simple form cannot show."""
    problems: list[str] = []
    leader = LEADER_ROLE[spec["framework"]]
    roles = spec["roles"]
    expected = {leader, "worker"} - {None}
    if set(roles) - expected or (leader and leader not in roles) or (not leader and "worker" not in roles):
        problems.append("roles other than one " + (f"{leader} and " if leader else "") + "workers")
    if len({(role["cpu"], role["memory"], role["gpu"]) for role in roles.values()}) > 1:
        problems.append("roles with different resources")
    if any(role["command"] or role["image"] or role["env"] for role in roles.values()):
        problems.append("a role's own command, image or env")
    command = _yaml_command(spec["command"])
    if not isinstance(command, str) or command != command.strip():
        problems.append("a command given as a list")
    scheduling = spec["scheduling"]
    if (
        scheduling["node_selector"]
        or scheduling["tolerations"]
        or not scheduling["gang"]
        or scheduling["oversell"] != 1
    ):
        problems.append("scheduling other than a queue")
    if spec["ports"]:
        problems.append("ports")
    if any(role.get("services") for role in roles.values()):
        problems.append("a role's services")
    if spec.get("debug"):
        problems.append("debug")
    if any("\n" in value or value != value.strip() for value in spec["env"].values()):
        problems.append("an env value with line breaks or surrounding spaces")
    if any(isinstance(spec[name], str) and spec[name] != spec[name].strip() for name in _FORM_TEXT):
        problems.append("a value with surrounding spaces")
    return problems


def is_simple(spec: dict[str, Any]) -> bool:
    """Whether the simple form shows this (normalized) spec without losing anything."""
    return not _form_problems(spec)


def to_form(spec: dict[str, Any]) -> dict[str, str]:
    """Form fields for a spec (validated first: SpecError when invalid); ValueError when it needs the YAML editor."""
    spec = validate(spec)
    problems = _form_problems(spec)
    if problems:
        raise ValueError("the simple form cannot show " + ", ".join(problems) + "; use the YAML editor")
    any_role = next(iter(spec["roles"].values()))
    fields = {name: spec[name] or "" for name in _FORM_TEXT}
    return fields | {
        "command": _yaml_command(spec["command"]),
        "workers": str(spec["roles"]["worker"]["replicas"] if "worker" in spec["roles"] else 0),
        "cpu": any_role["cpu"],
        "memory": any_role["memory"],
        "gpu": str(any_role["gpu"]),
        "queue": spec["scheduling"]["queue"],
        "max_retries": str(spec["max_retries"]),
        "volumes": ", ".join(spec["volumes"]),
        "env": "".join(f"{key}={value}\n" for key, value in spec["env"].items()),
    }


def form_errors(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """SpecError paths as simple-form fields; what no field shows goes under ``__all__`` (Django's key)."""
    result: dict[str, list[str]] = {}
    for path, messages in errors.items():
        head, _, rest = path.partition(".")
        if head == "roles":
            parts = path.split(".")
            field = parts[2] if len(parts) == 3 and parts[2] in ("cpu", "memory", "gpu") else "workers"
            rest = ""
        elif head == "scheduling" and rest == "queue":
            field, rest = "queue", ""
        elif head in FORM_FIELDS:
            field = head
        else:
            field, rest = "__all__", path
        for message in messages:
            text = f"{rest}: {message}" if rest else message
            if text not in result.setdefault(field, []):
                result[field].append(text)
    return result


# The simple form's fields: from_form takes them and to_form gives them back.
SPEC_FORM_FIELDS: tuple[str, ...] = tuple(FORM_FIELDS)
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
        self,
        *args,
        teams: list[tuple[str, str]] | None = None,
        experiments: list[str] | None = None,
        images: list[tuple[str, list[str], str]] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        # Registered images (reference, frameworks, label) offered as a datalist the page filters by framework;
        # free text stays allowed except on clusters that run registered images only (jobs/images.py refuses).
        self.image_choices = images or []
        if self.image_choices:
            self.fields["image"].widget.attrs["list"] = "image-names"
            self.fields["image"].widget.attrs["autocomplete"] = "off"
        self.fields["framework"].widget.choices = _framework_choices()
        clusters = list(
            Cluster.objects.filter(enabled=True)
            .order_by("name")
            .values_list("name", "is_default", "healthy", "health_message", "settings")
        )
        self.restricted_clusters = [
            row[0] for row in clusters if isinstance(row[4], dict) and row[4].get("registered_images_only") is True
        ]
        clusters = [row[:4] for row in clusters]
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
        for field, messages in form_errors(errors).items():
            if field in self.fields:
                self.add_error(field, [ValidationError(message) for message in messages])
                widget = self.fields[field].widget
                widget.attrs["class"] = f"{widget.attrs.get('class', '')} is-invalid".strip()


class ExperimentForm(_Bootstrap, forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
