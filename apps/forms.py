"""Forms of the apps pages. They render and parse input (KEY=VALUE lines, lists of usernames); the services
decide, and name the field of each problem."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS
from django.utils.html import escape, format_html
from django.utils.translation import gettext_lazy as _

from apps.models import AppKind, Visibility

# What every form's KEY=VALUE lines may hold at most: the services check names, values and counts.
MAX_LINES_CHARS = 200_000


class _Styled(forms.Form):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field.widget, forms.CheckboxSelectMultiple):
                continue
            css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            field.widget.attrs.setdefault("class", css)

    def add_problems(self, problems: dict[str, list[str]]) -> None:
        """A service's field errors at their fields (the others above the form)."""
        for field, messages in problems.items():
            if field in self.fields:
                self.add_error(field, list(messages))
            elif field in (NON_FIELD_ERRORS, "team"):  # these say what they are about
                self.add_error(None, list(messages))
            else:  # a field the form does not have (resources, archive): named above the form
                self.add_error(None, [f"{field}: {message}" for message in messages])


class SecretLines(forms.Textarea):
    """A textarea that never renders its value: a secret typed in a refused form is not sent back."""

    def format_value(self, value: Any) -> None:
        return None


def parse_lines(text: str) -> dict[str, str]:
    """KEY=VALUE lines as a mapping; blank lines and lines starting with # are skipped."""
    result: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not key.strip():
            raise forms.ValidationError(_("Line %(n)s is not KEY=VALUE."), code="invalid", params={"n": number})
        result[key.strip()] = value.strip()
    return result


def format_lines(values: dict[str, Any]) -> str:
    return "\n".join(f"{key}={value}" for key, value in sorted(values.items()))


def parse_usernames(text: str) -> list[str]:
    return sorted({name for name in re.split(r"[\s,;]+", text or "") if name})


class _LinesField(forms.CharField):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", MAX_LINES_CHARS)
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)

    def clean(self, value: Any) -> dict[str, str]:
        return parse_lines(super().clean(value) or "")


class _UsersField(forms.CharField):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 10_000)
        kwargs.setdefault(
            "help_text", _("Usernames, separated by spaces or commas: only when the visibility is 'shared'.")
        )
        super().__init__(**kwargs)

    def clean(self, value: Any) -> list[str]:
        return parse_usernames(super().clean(value) or "")


def _env_field() -> _LinesField:
    return _LinesField(
        label=_("Environment"),
        widget=forms.Textarea(attrs={"rows": 3, "class": "form-control font-monospace", "spellcheck": "false"}),
        help_text=_("KEY=VALUE, one a line. Shown to the team."),
    )


def _visibility_field() -> forms.ChoiceField:
    return forms.ChoiceField(
        label=_("Who may open it"),
        choices=Visibility.choices,
        initial=Visibility.TEAM,
        help_text=_(
            "team: the team's members; shared: and the users named below; public: anyone, signed in or not. "
            "Shared and public apps need a wildcard endpoint origin (a platform admin sets it)."
        ),
    )


def _idle_field() -> forms.CharField:
    return forms.CharField(
        label=_("Sleep after (minutes idle)"),
        required=False,
        max_length=10,
        help_text=_("With no request for this long its run stops; the next request wakes it. 0: never sleeps."),
    )


class AppForm(_Styled):
    """Publish a new app from a folder of the personal workspace."""

    name = forms.CharField(label=_("Name"), max_length=40, help_text=_("Lowercase letters, digits and '-'."))
    kind = forms.ChoiceField(label=_("Kind"), choices=AppKind.choices, initial=AppKind.STREAMLIT)
    source = forms.CharField(label=_("Folder"), max_length=1024)
    entry = forms.CharField(
        label=_("Entry file"), required=False, max_length=255, help_text=_("The app's Python file, such as app.py.")
    )
    command = forms.CharField(
        label=_("Command"),
        required=False,
        max_length=4096,
        help_text=_("A custom app only: the command that serves it on $PORT."),
    )
    description = forms.CharField(label=_("Description"), required=False, max_length=500)
    cpu = forms.CharField(label=_("CPU"), initial="1", max_length=32)
    memory = forms.CharField(label=_("Memory"), initial="2Gi", max_length=32)
    gpu = forms.CharField(label=_("GPUs"), initial="0", max_length=10)
    image = forms.CharField(
        label=_("Image"), required=False, max_length=1024, help_text=_("On Kubernetes; empty: the platform's default.")
    )
    env = _env_field()
    secrets = _LinesField(
        label=_("Secrets"),
        widget=SecretLines(attrs={"rows": 2, "class": "form-control font-monospace", "autocomplete": "off",
                                  "spellcheck": "false"}),
        help_text=_("KEY=VALUE, one a line. Only the app's run sees their values; pages show their names only."),
    )  # fmt: skip
    visibility = _visibility_field()
    shared_with = _UsersField(label=_("Share with"))
    idle_minutes = _idle_field()
    cluster = forms.CharField(label=_("Cluster"), required=False, max_length=63, help_text=_("Empty: the default."))

    def __init__(self, *args, files_url: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["idle_minutes"].initial = settings.EASYAI_APP_IDLE_MINUTES
        hint = _("A folder of your personal workspace, such as apps/demo.")
        if files_url:  # help texts are shown as markup (teams/_field.html): the link is built escaped
            hint = format_html(
                '{} <a href="{}">{}</a>', hint, files_url, _("Upload its files in the Files page first.")
            )
        self.fields["source"].help_text = hint

    def service_arguments(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["idle_minutes"] = data["idle_minutes"] or None
        data["cluster"] = data["cluster"] or None
        return data


class PublishForm(_Styled):
    """A new revision from the folder (the current one's folder and entry file when left empty)."""

    source = forms.CharField(label=_("Folder"), required=False, max_length=1024)
    entry = forms.CharField(label=_("Entry file"), required=False, max_length=255)
    command = forms.CharField(label=_("Command"), required=False, max_length=4096)

    def __init__(self, *args, custom: bool = False, current_source: str = "", current_entry: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        # Help texts are shown as markup (teams/_field.html): what the user named is escaped.
        self.fields["source"].help_text = escape(
            _("A folder of your personal workspace; empty: %(folder)s.") % {"folder": current_source or "—"}
        )
        self.fields["entry"].help_text = escape(_("Empty: %(entry)s.") % {"entry": current_entry or "—"})
        if not custom:
            del self.fields["command"]
        else:
            self.fields["command"].help_text = _("Empty: the current command.")

    def service_arguments(self) -> dict[str, Any]:
        return {name: (value or None) for name, value in self.cleaned_data.items()}


class SettingsForm(_Styled):
    """An app's settings; only what changed is sent to the service (a change of what its run uses restarts it)."""

    visibility = _visibility_field()
    shared_with = _UsersField(label=_("Share with"))
    idle_minutes = _idle_field()
    description = forms.CharField(label=_("Description"), required=False, max_length=500)
    cpu = forms.CharField(label=_("CPU"), max_length=32)
    memory = forms.CharField(label=_("Memory"), max_length=32)
    gpu = forms.CharField(label=_("GPUs"), max_length=10)
    image = forms.CharField(
        label=_("Image"), required=False, max_length=1024, help_text=_("On Kubernetes; empty: the platform's default.")
    )
    env = _env_field()
    secrets = _LinesField(
        label=_("Add or replace secrets"),
        widget=SecretLines(attrs={"rows": 2, "class": "form-control font-monospace", "autocomplete": "off",
                                  "spellcheck": "false"}),
        help_text=_("KEY=VALUE, one a line; the other secrets are kept. Their values are never shown."),
    )  # fmt: skip
    unset_secrets = forms.MultipleChoiceField(
        label=_("Remove secrets"), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, app, **kwargs) -> None:
        self.app = app
        shared = sorted(user.username for user in app.shared_with.all())
        initial = {
            "visibility": app.visibility,
            "shared_with": " ".join(shared),
            "idle_minutes": str(app.idle_minutes),
            "description": app.description,
            "cpu": app.cpu,
            "memory": app.memory,
            "gpu": str(app.gpu),
            "image": app.image,
            "env": format_lines(app.env or {}),
        }
        kwargs.setdefault("auto_id", "id_settings_%s")
        super().__init__(*args, initial=initial, **kwargs)
        self.fields["unset_secrets"].choices = [(name, name) for name in app.secret_names]
        self.current = {"shared_with": shared, "env": dict(app.env or {})}

    def changes(self) -> dict[str, Any]:
        """The fields whose value differs from the app's, as app_update takes them."""
        data = self.cleaned_data
        app = self.app
        changes: dict[str, Any] = {}
        for name in ("description", "cpu", "memory", "image"):
            if data[name] != getattr(app, name):
                changes[name] = data[name]
        if data["gpu"] != str(app.gpu):
            changes["gpu"] = data["gpu"]
        if data["idle_minutes"] != str(app.idle_minutes):
            changes["idle_minutes"] = data["idle_minutes"]
        if data["env"] != self.current["env"]:
            changes["env"] = data["env"]
        if data["secrets"]:
            changes["secrets"] = data["secrets"]
        if data["unset_secrets"]:
            changes["unset_secrets"] = list(data["unset_secrets"])
        if data["visibility"] != app.visibility or (
            data["visibility"] == Visibility.SHARED and data["shared_with"] != self.current["shared_with"]
        ):
            changes["visibility"] = data["visibility"]
            changes["shared_with"] = data["shared_with"] if data["visibility"] == Visibility.SHARED else []
        return changes
