"""Job templates: a spec with ``{{field}}`` placeholders, saved from any job, rendered with values into a spec that is
submitted like any other.

Placeholders live inside the spec's strings, never in its structure, so a value can only ever become a value:
a string that is one placeholder (``replicas: "{{workers}}"``) takes the value whole (a whole number where the spec
wants one), a placeholder inside a longer string (``--epochs {{epochs}}``) is replaced as text.

Who sees and changes them: a team's template is the team's (seen by its members, changed by its owner or a team
admin, 404 to everyone else, as every object of a team); a platform template (``team`` empty) is seen by everyone
and changed by platform admins. ``load_platform_templates`` loads the shipped ones from ``examples/templates/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from jobs import spec as job_spec
from jobs.models import Job, JobTemplate
from teams import permissions
from teams.models import Team
from teams.permissions import Action

PLACEHOLDER = re.compile(r"\{\{\s*([a-z][a-z0-9_]{0,39})\s*\}\}")
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}", re.ASCII)
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)
# Keys whose values the spec wants as whole numbers: a placeholder standing alone there becomes one.
_NUMBER_KEYS = frozenset({"replicas", "gpu", "max_retries"})
MAX_FIELDS = 50
SHIPPED = Path(settings.BASE_DIR) / "examples" / "templates"


# --- reads -----------------------------------------------------------------------------


def templates_visible(user) -> QuerySet[JobTemplate]:
    """The platform's templates and those of the user's teams (and any shared one by one)."""
    queryset = JobTemplate.objects.all()
    if not (user is not None and user.is_authenticated and user.is_active):
        return queryset.none()
    return permissions.restrict(queryset, user) | queryset.filter(team__isnull=True)


def can_change(user, template: JobTemplate) -> bool:
    """The owner or a team admin changes a team's template; platform admins every one."""
    if template.team_id is None:
        return permissions.is_platform_admin(user)
    return permissions.can(user, template, Action.CHANGE)


def template_get(user, *, change: bool = False, **lookup: Any) -> JobTemplate:
    """One template: 404 when the user may not see it, 403 when seen but not theirs to change."""
    template = templates_visible(user).select_related("team", "owner").filter(**lookup).first()
    if template is None:
        raise Http404(_("Not found."))
    if change and not can_change(user, template):
        raise PermissionDenied(_("Only the template's owner or a team admin may change it."))
    return template


def template_named(user, name: str, team: Team | None = None) -> JobTemplate:
    """The template of that name: the team's own before the platform's (404 when neither is visible)."""
    found = list(templates_visible(user).select_related("team").filter(name=name))
    if team is not None:
        found.sort(key=lambda t: (t.team_id != team.pk, t.team_id is not None))
    else:
        found.sort(key=lambda t: t.team_id is not None)
    if not found:
        raise Http404(_("No template %(name)r that you can see.") % {"name": name})
    return found[0]


# --- rendering ---------------------------------------------------------------------------


def placeholders(value: Any) -> set[str]:
    """Every field a spec (or any part of it) names in ``{{…}}``."""
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(placeholders(v) for v in value.values()), *(placeholders(k) for k in value))
    if isinstance(value, list):
        return set().union(*(placeholders(v) for v in value))
    return set()


def _fill(value: Any, values: dict[str, str], key: str = "") -> Any:
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole:
            text = values[whole.group(1)]
            if key in _NUMBER_KEYS and text.isascii() and text.isdigit() and len(text) < 10:
                return int(text)
            return text
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], value)
    if isinstance(value, dict):
        return {_fill(k, values): _fill(v, values, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values, key) for v in value]
    return value


def render(template: JobTemplate, values: dict[str, Any] | None = None) -> dict:
    """The template's spec with the values (else each field's default) in place; ValidationError naming every
    unknown field and every field left without a value."""
    values = {k: "" if v is None else str(v) for k, v in (values or {}).items()}
    fields = template.fields or {}
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        errors["values"] = [
            _("The template %(t)s has no field %(names)s; its fields: %(fields)s.")
            % {"t": template.name, "names": ", ".join(unknown), "fields": ", ".join(sorted(fields)) or "none"}
        ]
    filled: dict[str, str] = {}
    for name, field in fields.items():
        if values.get(name, "") != "":
            filled[name] = values[name]
        elif str((field or {}).get("default") or "") != "":
            filled[name] = str(field["default"])
    missing = sorted(set(fields) - set(filled))
    if missing:
        errors.setdefault("values", []).append(
            _("Give a value for %(names)s (no default).") % {"names": ", ".join(missing)}
        )
    if errors:
        raise ValidationError(errors)
    return _fill(template.spec, filled)


# --- writes ------------------------------------------------------------------------------


def _clean_fields(fields: Any, spec: dict) -> dict[str, dict[str, str]]:
    errors: list[str] = []
    if not isinstance(fields, dict) or len(fields) > MAX_FIELDS:
        raise ValidationError({"fields": [_("A mapping of at most %(n)d field names.") % {"n": MAX_FIELDS}]})
    cleaned: dict[str, dict[str, str]] = {}
    for name, field in fields.items():
        if not (isinstance(name, str) and _FIELD_NAME.fullmatch(name)):
            errors.append(_("%(name)r: lowercase letters, digits and '_', starting with a letter.") % {"name": name})
            continue
        field = field if isinstance(field, dict) else {"default": field}
        cleaned[name] = {
            "description": str(field.get("description") or ""),
            "default": "" if field.get("default") is None else str(field.get("default")),
        }
    used = placeholders(spec)
    if undeclared := sorted(used - set(cleaned)):
        errors.append(_("The spec names fields it does not declare: %(names)s.") % {"names": ", ".join(undeclared)})
    if unused := sorted(set(cleaned) - used):
        errors.append(_("Fields the spec never uses: %(names)s.") % {"names": ", ".join(unused)})
    if errors:
        raise ValidationError({"fields": errors})
    return cleaned


def _check_renders(spec: dict, fields: dict[str, dict[str, str]]) -> dict:
    """The spec must validate once filled in (with each default, or a stand-in where a field has none)."""
    sample = {name: field["default"] or ("1" if name in _numbered(spec) else "x") for name, field in fields.items()}
    try:
        return job_spec.validate(_fill(spec, sample))
    except job_spec.SpecError as exc:
        raise ValidationError({f"spec.{path}": messages for path, messages in exc.errors.items()}) from None


def _numbered(value: Any, key: str = "") -> set[str]:
    """Fields standing alone where a whole number goes."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        return {whole.group(1)} if whole and key in _NUMBER_KEYS else set()
    if isinstance(value, dict):
        return set().union(*(_numbered(v, k) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(_numbered(v, key) for v in value))
    return set()


def _save(template: JobTemplate) -> JobTemplate:
    try:
        with transaction.atomic():
            template.save()
    except IntegrityError:
        raise ValidationError({"name": [_("There is already a template named %(name)s.") % {"name": template.name}]})
    return template


@transaction.atomic
def template_create(
    *, user, team: Team | None, name: str, spec: Any, fields: Any, description: str = ""
) -> JobTemplate:
    """A template of a team (any member; ``team`` None: a platform template, platform admins)."""
    if team is None and not permissions.is_platform_admin(user):
        raise PermissionDenied(_("Only platform admins make platform templates."))
    if team is not None and not permissions.can_use_team(user, team):
        raise ValidationError({"team": [_("No team %(team)r that you belong to.") % {"team": team.slug}]})
    name = (name or "").strip()
    if not _NAME.fullmatch(name):
        raise ValidationError({"name": [_("Lowercase letters, digits and '-', at most 63.")]})
    if not isinstance(spec, dict):
        raise ValidationError({"spec": [_("A job spec (a mapping) with {{field}} placeholders.")]})
    if len(description or "") > 5000:
        raise ValidationError({"description": [_("At most 5000 characters.")]})
    spec = {k: v for k, v in spec.items() if not (k == "team" and team is not None)}  # the template's team decides
    cleaned = _clean_fields(fields, spec)
    checked = _check_renders(spec, cleaned)
    return _save(
        JobTemplate(
            team=team,
            name=name,
            description=description or "",
            framework=checked["framework"],
            spec=spec,
            fields=cleaned,
            owner=user if user is not None and user.is_authenticated else None,
        )
    )


def _at(spec: dict, path: str) -> tuple[Any, Any]:
    """The container and key a dotted path names in a spec (``roles.worker.replicas``, ``env.EPOCHS``)."""
    node: Any = spec
    parts = path.split(".")
    for part in parts[:-1]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(path)
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        return node, int(last)
    if isinstance(node, dict) and last in node:
        return node, last
    raise KeyError(path)


@transaction.atomic
def template_from_job(
    *, user, job: Job, name: str, fields: dict[str, dict[str, str]], description: str = ""
) -> JobTemplate:
    """Save a job's spec as a template of the job's team; each field names the spec's value it replaces
    (``{"epochs": {"path": "env.EPOCHS"}}``, or ``"text": "20"`` to replace only that text in it); the job's
    value becomes the field's default."""
    if not permissions.can_use_team(user, job.team):
        raise PermissionDenied(_("Only members of the job's team may save it as a template."))
    spec = job_spec.validate(job.spec)
    spec = {k: v for k, v in spec.items() if k not in ("team",)}
    errors: list[str] = []
    declared: dict[str, dict[str, str]] = {}
    for field_name, field in (fields or {}).items():
        field = field if isinstance(field, dict) else {"path": field}
        path = str(field.get("path") or "")
        try:
            container, key = _at(spec, path)
        except KeyError:
            errors.append(_("%(field)s: the spec has no value at %(path)r.") % {"field": field_name, "path": path})
            continue
        current = container[key]
        text = str(field.get("text") or "")
        placeholder = "{{" + field_name + "}}"
        if text:
            # In a list (a command), the first item that holds the text.
            items = current if isinstance(current, list) else [current]
            index = next((i for i, item in enumerate(items) if isinstance(item, str) and text in item), None)
            if index is None:
                errors.append(_("%(f)s: %(text)r is not in %(path)s.") % {"f": field_name, "text": text, "path": path})
                continue
            if isinstance(current, list):
                current[index] = current[index].replace(text, placeholder, 1)
            else:
                container[key] = current.replace(text, placeholder, 1)
            default = text
        elif isinstance(current, list | dict):
            errors.append(
                _("%(f)s: %(path)s holds more than one value; name the text to replace in it.")
                % {"f": field_name, "path": path}
            )
            continue
        else:
            default = "" if current is None else str(current).lower() if isinstance(current, bool) else str(current)
            container[key] = placeholder
        declared[field_name] = {"description": str(field.get("description") or ""), "default": default}
    if errors:
        raise ValidationError({"fields": errors})
    return template_create(user=user, team=job.team, name=name, spec=spec, fields=declared, description=description)


@transaction.atomic
def template_delete(*, user, template: JobTemplate) -> None:
    """Delete a template; jobs submitted from it keep their specs."""
    if not can_change(user, template):
        raise PermissionDenied(_("Only the template's owner or a team admin may change it."))
    template.delete()


def template_submit(
    *,
    user,
    template: JobTemplate,
    values: dict[str, Any] | None = None,
    team: Team | None = None,
    dry_run: bool = False,
):
    """Render the template with the values and submit the spec as any other (``job_submit``), or dry-run it."""
    from jobs import services

    spec = render(template, values)
    if team is not None:
        spec["team"] = team.slug
    elif template.team_id is not None and not spec.get("team"):
        spec["team"] = template.team.slug
    if dry_run:
        return services.job_dry_run(user=user, data=spec)
    return services.job_submit(user=user, data=spec)


# --- the shipped templates -------------------------------------------------------------------


def read_template_file(path: Path) -> dict[str, Any]:
    """A template file: ``name``, ``description``, ``fields`` and the ``spec`` with its placeholders."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not {"name", "spec"} <= set(document):
        raise ValueError(f"{path}: a template file has a name, a description, fields and a spec")
    return document


@transaction.atomic
def load_platform_templates(*, user=None, directory: Path = SHIPPED) -> list[JobTemplate]:
    """Load (or refresh) every shipped template as a platform template; returns them in file order."""
    loaded = []
    for path in sorted(directory.glob("*.yaml")):
        document = read_template_file(path)
        fields = _clean_fields(document.get("fields") or {}, document["spec"])
        checked = _check_renders(document["spec"], fields)
        template, _created = JobTemplate.objects.update_or_create(
            team=None,
            name=document["name"],
            defaults={
                "description": document.get("description") or "",
                "framework": checked["framework"],
                "spec": document["spec"],
                "fields": fields,
                "owner": user,
            },
        )
        loaded.append(template)
    return loaded


def visible_for_picker(user) -> QuerySet[JobTemplate]:
    """What the submit page's picker offers: the user's teams' templates and the platform's."""
    return templates_visible(user).select_related("team").order_by(F("team").asc(nulls_last=True), "name")
