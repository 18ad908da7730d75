"""Pages: experiments, the jobs list, a job's page with its actions, and the submit page.

Views parse input, ask ``jobs.selectors`` or call ``jobs.services``, and render;
every object comes through ``teams.permissions`` (404 to outsiders, 403 to
team-mates asking for a change).
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from assets import images as image_registry
from clusters.backends.contract.quantity import format_cpu, format_memory
from clusters.models import Cluster
from jobs import debug_views, origins, panels, readiness, selectors, services
from jobs import forms as spec_forms
from jobs import spec as job_spec
from jobs import templates as job_templates
from jobs.forms import SPEC_FORM_FIELDS, ExperimentForm, JobSpecForm
from jobs.models import Experiment, Framework, Job
from jobs.page_helpers import MAX_STATE_IDS, ORDERING_CHOICES, errors_of, format_duration, list_params
from jobs.spec.toolbox import services_of
from jobs.state import ACTIVE, STOPPABLE, JobState, state_label
from teams import permissions
from teams.permissions import Action

PAGE_SIZE = 50


def _page(request: HttpRequest, queryset) -> Any:
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def _with_durations(jobs) -> None:
    for job in jobs:
        job.duration_text = format_duration(job.duration)
    origins.attach(jobs)  # a pipeline run's step, say: the row links back to it


def _current_team(request: HttpRequest):
    team = getattr(request, "team", None)
    return team if team else None


# --- experiments -------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def experiment_list(request: HttpRequest) -> HttpResponse:
    team = _current_team(request)
    form = ExperimentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if team is None:
            form.add_error(None, _("You are in no team: create one or ask a team admin to add you."))
        else:
            try:
                experiment = services.experiment_create(
                    user=request.user,
                    team=team,
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                )
            except ValidationError as exc:
                for path, errors in errors_of(exc).items():
                    form.add_error(path if path in form.fields else None, errors)
            else:
                messages.success(request, _("Experiment %(name)s created.") % {"name": experiment.name})
                return redirect("experiment-detail", pk=experiment.pk)

    scope = request.GET.get("team")
    queryset = selectors.experiments_visible(request.user).annotate(
        job_count=Count("jobs", filter=Q(jobs__deleted=False))
    )
    if scope is None and team is not None:
        queryset = queryset.filter(team=team)
    elif scope and scope != "all":
        queryset = queryset.filter(team__slug=scope)
    page = _page(request, queryset.order_by("-created_at", "-id"))
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "jobs/experiment_list.html",
        {"form": form, "page": page, "team": team, "all_teams": scope == "all"},
        status=status,
    )


@login_required
@require_GET
def experiment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = permissions.get_or_404(selectors.experiments_visible(request.user), request.user, Action.VIEW, pk=pk)
    page = _page(
        request, selectors.jobs_visible(request.user).filter(experiment=experiment).order_by("-created_at", "-id")
    )
    _with_durations(page.object_list)
    return render(request, "jobs/experiment_detail.html", {"experiment": experiment, "page": page})


# --- jobs list ---------------------------------------------------------------------------


@login_required
@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    team = _current_team(request)
    params = list_params(request.GET, team.slug if team else None)
    queryset = selectors.jobs_filtered(selectors.jobs_visible(request.user), params)
    page = _page(request, queryset)
    _with_durations(page.object_list)
    selected_states = params["state"].split(",") if params.get("state") else []
    context = {
        "page": page,
        "filters": params,
        "all_teams": "team" not in params,
        "teams": list(permissions.visible_teams(request.user).order_by("slug").values_list("slug", "name")),
        "states": JobState.choices,
        "selected_states": selected_states,
        "states_summary": ", ".join(str(label) for value, label in JobState.choices if value in selected_states),
        "orderings": ORDERING_CHOICES,
        "ordering": params.get("ordering") or "-created_at",
        "frameworks": [(name, label) for name, label in Framework.choices if name in job_spec.FRAMEWORK_ROLES],
        "clusters": list(Cluster.objects.order_by("name").values_list("name", flat=True)),
        "filtered": any(params.get(key) for key in ("experiment", "owner", "state", "framework", "cluster", "q")),
    }
    return render(request, "jobs/job_list.html", context)


@login_required
@require_GET
def job_states(request: HttpRequest) -> JsonResponse:
    """The states of the jobs a page shows, for its badges to follow without a reload."""
    ids = [value for value in request.GET.getlist("id") if value][:MAX_STATE_IDS]
    rows = selectors.jobs_visible(request.user).filter(public_id__in=ids).values_list("public_id", "state", "held_mode")
    return JsonResponse(
        {"jobs": {public_id: {"state": state, "label": state_label(state, held)} for public_id, state, held in rows}}
    )


# --- one job -------------------------------------------------------------------------------


def _job(request: HttpRequest, public_id: str, action: Action = Action.VIEW, *, detail: bool = False) -> Job:
    return permissions.get_or_404(
        selectors.jobs_visible(request.user, detail=detail), request.user, action, public_id=public_id
    )


@login_required
@require_GET
def job_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    job = _job(request, public_id, detail=True)
    can_change = permissions.can(request.user, job, Action.CHANGE)
    waiting = selectors.why_waiting(job) if job.state in (JobState.QUEUED, JobState.UNKNOWN, JobState.PENDING) else ""
    tasks = list(job.tasks.all())
    context = {
        "job": job,
        "tasks": tasks,
        "events": list(job.events.all()),
        # The cluster's own events (Kubernetes Events on the job's pods and objects), the latest ones.
        "cluster_events": selectors.cluster_events_of(job),
        "reruns": list(job.reruns.filter(deleted=False).order_by("created_at").values_list("public_id", flat=True)),
        "spec_yaml": job_spec.to_yaml(job.spec),
        # The image each role ran (the framework's default when the spec named none): the stored spec says.
        "images": sorted(
            {role.get("image") or job.spec.get("image") or "" for role in job.spec["roles"].values()} - {""}
        ),
        "waiting": waiting,
        "duration_text": format_duration(job.duration),
        "totals": {"cpu": format_cpu(job.cpu_milli), "memory": format_memory(job.memory_bytes), "gpu": job.gpu},
        "can_stop": can_change and job.state in STOPPABLE,
        "can_delete": can_change,
        "can_rerun": services.can_rerun(request.user, job),
        "active": job.state in ACTIVE,
        "panels": panels.panels_for(request, job),
        # The debug section: the tasks' background services (links for those who may open the job's endpoints),
        # and the hold of a failed task with its release (the owner or a team admin, as for a shell).
        "services": readiness.service_links(job, tasks, may_open=permissions.can(request.user, job, Action.OPEN))
        if services_of(job.spec)
        else [],
        "can_release": can_change and job.held_until is not None,
        # How to connect over SSH (jobs/_ssh_connect.html): None when the viewer may not, or no task takes one now.
        "ssh": (debug_views.ssh_connect_context(request, job) or {}).get("ssh"),
    }
    return render(request, "jobs/job_detail.html", context)


@login_required
@require_POST
def job_release(request: HttpRequest, public_id: str) -> HttpResponse:
    job = _job(request, public_id, Action.CHANGE)
    try:
        services.job_release_hold(job=job, actor=request.user)
    except services.JobActionRefused as exc:
        messages.error(request, _("The hold was not released: %(reason)s") % {"reason": exc})
    else:
        messages.success(request, _("The hold of job %(id)s was released.") % {"id": job.public_id})
    return redirect("job-detail", public_id=job.public_id)


@login_required
@require_POST
def job_stop(request: HttpRequest, public_id: str) -> HttpResponse:
    job = _job(request, public_id, Action.CHANGE)
    try:
        services.job_stop(job=job, actor=request.user)
    except services.JobActionRefused as exc:
        messages.error(request, _("The job was not stopped: %(reason)s") % {"reason": exc})
    else:
        messages.success(request, _("Job %(id)s stopped.") % {"id": job.public_id})
    return redirect("job-detail", public_id=job.public_id)


@login_required
@require_POST
def job_rerun(request: HttpRequest, public_id: str) -> HttpResponse:
    job = _job(request, public_id)
    try:
        # A viewer who is not in the job's team is refused by the service (PermissionDenied: 403).
        new_job = services.job_rerun(job=job, user=request.user)
    except ValidationError as exc:
        problems = "; ".join(f"{path}: {m}" for path, msgs in errors_of(exc).items() for m in msgs)
        messages.error(request, _("The job was not re-run: %(problems)s") % {"problems": problems})
        return redirect("job-detail", public_id=job.public_id)
    messages.success(request, _("Job %(id)s is a re-run of %(old)s.") % {"id": new_job.public_id, "old": job.public_id})
    return redirect("job-detail", public_id=new_job.public_id)


@login_required
@require_POST
def job_delete(request: HttpRequest, public_id: str) -> HttpResponse:
    job = _job(request, public_id, Action.CHANGE)
    try:
        services.job_delete(job=job, actor=request.user)
    except services.JobActionRefused as exc:
        messages.error(request, _("The job was not deleted: %(reason)s") % {"reason": exc})
        return redirect("job-detail", public_id=job.public_id)
    messages.success(request, _("Job %(id)s deleted.") % {"id": job.public_id})
    return redirect("job-list")


# --- submit ------------------------------------------------------------------------------


DEFAULT_FORM = {
    "framework": "pytorch",
    "workers": "1",
    "cpu": job_spec.DEFAULT_CPU,
    "memory": job_spec.DEFAULT_MEMORY,
    "gpu": "0",
    "priority": "normal",
}


def _experiment_names(request: HttpRequest) -> list[str]:
    team = _current_team(request)
    if team is None:
        return []
    return list(Experiment.objects.filter(team=team).order_by("name").values_list("name", flat=True)[:200])


def _form_of(data: Any) -> tuple[dict[str, str] | None, str]:
    """The simple form's fields for a spec document, or None and why the form cannot show it."""
    try:
        fields = spec_forms.to_form(data)
    except job_spec.SpecError:  # the page lists the spec's errors; the form keeps what was typed
        return None, ""
    except ValueError as exc:  # valid, but more than the simple form has fields for
        return None, str(exc)
    return {name: str(fields.get(name, "") or "") for name in SPEC_FORM_FIELDS}, ""


def _read_spec(source: str, yaml_text: str, fields: dict[str, str]) -> dict:
    """The spec document from the side the user edited last; SpecError when it cannot be read."""
    if source == "form":
        return spec_forms.from_form(fields)
    return job_spec.parse(yaml_text, "application/yaml")


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)


@login_required
@require_http_methods(["GET", "POST"])
def job_submit(request: HttpRequest) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    dry_run = None
    status = 200
    form_note = ""
    picked = None
    if request.method == "POST":
        yaml_text = request.POST.get("yaml", "")
        form_values = {name: request.POST.get(name, "") for name in SPEC_FORM_FIELDS}
        source = request.POST.get("source")
        if source not in ("form", "yaml"):
            # Without the page's script nothing says which side was edited: the YAML wins when there is any.
            source = "yaml" if yaml_text.strip() else "form"
        try:
            data = _read_spec(source, yaml_text, form_values)
        except job_spec.SpecError as exc:
            errors = exc.errors
        else:
            if source == "form":
                yaml_text = job_spec.to_yaml(data)
            else:
                fields, form_note = _form_of(data)
                form_values = fields or form_values
            try:
                if request.POST.get("action") == "validate":
                    dry_run = services.job_dry_run(user=request.user, data=data)
                else:
                    job = services.job_submit(user=request.user, data=data)
                    messages.success(request, _("Job %(id)s submitted.") % {"id": job.public_id})
                    return redirect("job-detail", public_id=job.public_id)
            except ValidationError as exc:
                errors = errors_of(exc)
        if errors:
            status = 400
    else:
        copied = request.GET.get("from")
        if copied:
            original = _job(request, copied)
            source = "yaml"
            yaml_text = job_spec.to_yaml(original.spec)
            fields, form_note = _form_of(original.spec)
            form_values = fields or {}
        elif request.GET.get("template"):
            source, yaml_text, form_values, form_note, errors, picked = _from_template(request)
        else:
            source = "form"
            form_values = dict(DEFAULT_FORM)
            yaml_text = job_spec.to_yaml(spec_forms.from_form(form_values))

    form = JobSpecForm(
        form_values,
        teams=list(permissions.visible_teams(request.user).order_by("slug").values_list("slug", "name")),
        experiments=_experiment_names(request),
        images=_image_choices(request),
    )
    form.add_spec_errors(errors)
    context = {
        "form": form,
        "yaml_text": yaml_text,
        "source": source,
        # A form that cannot show the spec is read-only, so editing it cannot overwrite the YAML.
        "form_note": form_note,
        "errors": [(path, message) for path, msgs in errors.items() for message in msgs],
        "dry_run": dry_run,
        "dry_run_spec": job_spec.to_yaml(dry_run.spec) if dry_run else "",
        "dry_run_description": _dump(dry_run.description.to_dict()) if dry_run else "",
        "dry_run_manifests": _dump(dry_run.rendered) if dry_run else "",
        "copied_from": request.GET.get("from", ""),
        "templates": list(job_templates.visible_for_picker(request.user)[:200]),
        "picked": picked,
    }
    return render(request, "jobs/job_submit.html", context, status=status)


def _image_choices(request: HttpRequest) -> list[tuple[str, list[str], str]]:
    """Each registered image the user may pick, one entry per tag: (reference, frameworks, label)."""
    choices = []
    for image in image_registry.images_visible(request.user).order_by("name", "id"):
        label = f"{image.get_accelerator_display()}{' · ' + image.description[:60] if image.description else ''}"
        choices += [(reference, image.frameworks or [], label) for reference in image.references()]
    return choices


def _from_template(request: HttpRequest) -> tuple[str, str, dict[str, str], str, dict[str, list[str]], Any]:
    """The submit page filled in from a template: its fields' values from ``set-<field>`` (else defaults)."""
    template = job_templates.template_get(request.user, pk=_int_or_404(request.GET["template"]))
    values = {name: request.GET[f"set-{name}"] for name in template.fields if request.GET.get(f"set-{name}")}
    picked = {
        "template": template,
        "fields": [
            (name, values.get(name, ""), field.get("description", ""), field.get("default", ""))
            for name, field in template.fields.items()
        ],
    }
    try:
        spec = job_templates.render(template, values)
    except ValidationError as exc:
        return "yaml", job_spec.to_yaml(template.spec), {}, "", errors_of(exc), picked
    if template.team_id and not spec.get("team"):
        spec["team"] = template.team.slug
    fields, form_note = _form_of(spec)
    return "yaml", job_spec.to_yaml(spec), fields or {}, form_note, {}, picked


def _int_or_404(text: str) -> int:
    if not text.isdigit():
        raise Http404(_("Not found."))
    return int(text)


def _body(request: HttpRequest) -> dict[str, Any]:
    """Form-encoded or JSON request bodies alike."""
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return {}
        return body if isinstance(body, dict) else {}
    return request.POST.dict()


@login_required
@require_POST
def spec_form_to_yaml(request: HttpRequest) -> JsonResponse:
    """The simple form's fields as the spec's YAML (not validated: the submit page validates on demand)."""
    body = _body(request)
    fields = {name: body[name] if isinstance(body.get(name), str) else "" for name in SPEC_FORM_FIELDS}
    return JsonResponse({"yaml": job_spec.to_yaml(spec_forms.from_form(fields))})


@login_required
@require_POST
def spec_yaml_to_form(request: HttpRequest) -> JsonResponse:
    """A YAML spec as the simple form's fields; ``simple`` is false when the form cannot show all of it."""
    text = _body(request).get("yaml", "")
    try:
        data = job_spec.parse(text if isinstance(text, str) else "", "application/yaml")
        fields = spec_forms.to_form(data)
    except job_spec.SpecError as exc:
        return JsonResponse({"errors": exc.errors, "field_errors": spec_forms.form_errors(exc.errors)}, status=400)
    except ValueError as exc:
        return JsonResponse({"simple": False, "message": str(exc)})
    return JsonResponse(
        {"simple": True, "fields": {name: str(fields.get(name, "") or "") for name in SPEC_FORM_FIELDS}}
    )
