"""Pages of job templates: the list (a team's and the platform's), deleting one, and saving a job as one.
Submitting from a template is the submit page's picker (``views.job_submit``)."""

from __future__ import annotations

import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs import selectors, templates
from jobs import spec as job_spec
from jobs.page_helpers import errors_of
from teams import permissions

# "epochs = env.EPOCHS" or "epochs = command: 20" (the text 20 inside the command), one a line.
_FIELD_LINE = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*=\s*([A-Za-z0-9_.]+)\s*(?::\s*(.+?))?\s*$")


@login_required
@require_GET
def template_list(request: HttpRequest) -> HttpResponse:
    rows = list(templates.visible_for_picker(request.user).select_related("owner"))
    for template in rows:
        template.changeable = templates.can_change(request.user, template)
    return render(request, "jobs/template_list.html", {"templates": rows})


@login_required
@require_POST
def template_delete(request: HttpRequest, pk: int) -> HttpResponse:
    template = templates.template_get(request.user, change=True, pk=pk)
    templates.template_delete(user=request.user, template=template)
    messages.success(request, _("Template %(name)s deleted.") % {"name": template.name})
    return redirect("job-template-list")


def parse_field_lines(text: str) -> tuple[dict[str, dict[str, str]], list[str]]:
    """The save page's fields, one ``name = path`` (or ``name = path: text``) a line."""
    fields: dict[str, dict[str, str]] = {}
    problems = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _FIELD_LINE.match(line)
        if match is None:
            problems.append(_("Not 'name = path' or 'name = path: text': %(line)s") % {"line": line.strip()})
            continue
        name, path, inner = match.groups()
        fields[name] = {"path": path, **({"text": inner} if inner else {})}
    return fields, problems


@login_required
@require_http_methods(["GET", "POST"])
def template_save(request: HttpRequest, public_id: str) -> HttpResponse:
    """Save a job's spec as a template of its team, choosing which values become fields."""
    job = permissions.get_or_404(selectors.jobs_visible(request.user), request.user, public_id=public_id)
    values = {"name": request.POST.get("name", job.name), "description": request.POST.get("description", ""),
              "fields": request.POST.get("fields", "")}  # fmt: skip
    errors: list[str] = []
    if request.method == "POST":
        fields, errors = parse_field_lines(values["fields"])
        if not errors:
            try:
                template = templates.template_from_job(
                    user=request.user, job=job, name=values["name"], fields=fields, description=values["description"]
                )
            except ValidationError as exc:
                errors = [f"{path}: {m}" for path, msgs in errors_of(exc).items() for m in msgs]
            else:
                messages.success(request, _("Template %(name)s saved.") % {"name": template.name})
                return redirect("job-template-list")
    context = {"job": job, "values": values, "errors": errors, "spec_yaml": job_spec.to_yaml(job.spec)}
    return render(request, "jobs/template_save.html", context, status=400 if errors else 200)
