"""Pipelines pages: the list, the editor (YAML with validation as you type and the DAG beside it), a pipeline's
versions, runs, schedules and Run form, and a run's page (its DAG coloured by step state, live while it runs).

Views parse input, read through ``teams.permissions`` and call ``pipelines.services``; an outsider gets 404 on
every page and JSON view (``permissions.get_or_404``), a team-mate sees, and a refusal of a service (its state,
its permission) comes back as a message on the page, or onto the form's field it names, never as an error page.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pipelines import services
from pipelines import spec as pipeline_spec
from pipelines.forms import MAX_SOURCE, RunForm, ScheduleForm, SourceForm
from pipelines.models import (
    RUN_ACTIVE,
    Engine,
    Pipeline,
    PipelineRun,
    PipelineVersion,
    RunStep,
    Schedule,
    StepJob,
    StepState,
)
from teams import permissions
from teams.exceptions import ActionRefused
from teams.permissions import Action

LIST_LIMIT = 500
RUNS_SHOWN = 50
VERSIONS_SHOWN = 100

# The new-pipeline editor's first text: small, valid, and showing outputs, a condition and a join.
EXAMPLE = """\
name: train-and-evaluate
description: Prepare data, train, evaluate; register the model only when it is accurate enough.
params:
  threshold: 0.9
steps:
  - name: prepare
    job:
      framework: batch
      command: echo preparing
      roles: {main: {}}
  - name: train
    depends: [prepare]
    outputs:
      parameters: {accuracy: model_dir/accuracy}
    job:
      framework: batch
      command: echo 0.95 > "$model_dir/accuracy"
      roles: {main: {}}
  - name: register
    depends: [train]
    when: "steps.train.outputs.parameters.accuracy >= params.threshold"
    job:
      framework: batch
      command: echo "registering {{steps.train.job_id}}"
      roles: {main: {}}
  - name: report
    depends: "train && (register.succeeded || register.skipped)"
    job:
      framework: batch
      command: echo "accuracy {{steps.train.outputs.parameters.accuracy}}"
      roles: {main: {}}
"""


# --- helpers --------------------------------------------------------------------------------


def _problems(exc: ValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return exc.message_dict
    return {"__all__": exc.messages}


def _say_refused(request: HttpRequest, exc: Exception) -> None:
    """A refusal as a message on the page the view redirects to."""
    if isinstance(exc, ValidationError):
        for field, problems in _problems(exc).items():
            text = " ".join(problems)
            messages.error(request, text if field == "__all__" else f"{field}: {text}")
    else:
        messages.error(request, " ".join(getattr(exc, "messages", None) or [str(exc)]))


def _pipeline(request: HttpRequest, pk: int) -> Pipeline:
    return permissions.get_or_404(Pipeline.objects.select_related("team", "owner"), request.user, pk=pk)


def _run(request: HttpRequest, run_id: str) -> PipelineRun:
    queryset = PipelineRun.objects.select_related(
        "pipeline", "version", "team", "owner", "schedule", "rerun_of", "cluster"
    )
    return permissions.get_or_404(queryset, request.user, public_id=run_id)


def _source_of(version: PipelineVersion | None) -> str:
    if version is None:
        return ""
    return version.source or pipeline_spec.to_text(version.spec)


def graph_of(spec: dict) -> dict[str, Any]:
    """The DAG the pages draw: a node per step (in the spec's order), an edge per step it requires."""
    nodes, edges = [], []
    for step in spec.get("steps") or []:
        nodes.append(
            {
                "id": step["name"],
                "foreach": step.get("foreach") is not None,
                "when": step.get("when") or "",
                "depends": step.get("depends") or "",
            }
        )
        for parent in step.get("requires") or []:
            edges.append({"source": parent, "target": step["name"]})
    return {"nodes": nodes, "edges": edges}


def _seconds(start, end) -> int | None:
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds()))


# --- the list -------------------------------------------------------------------------------


@login_required
@require_GET
def pipeline_list(request: HttpRequest) -> HttpResponse:
    last = PipelineRun.objects.filter(pipeline=OuterRef("pk")).order_by("-created_at", "-id")
    queryset = (
        permissions.restrict(Pipeline.objects.select_related("team", "owner"), request.user)
        .annotate(last_run_state=Subquery(last.values("state")[:1]), last_run_id=Subquery(last.values("public_id")[:1]))
        .order_by("team__slug", "name")
    )
    pipelines = list(queryset[:LIST_LIMIT])
    labels = dict(PipelineRun._meta.get_field("state").choices)
    for pipeline in pipelines:
        pipeline.last_run_label = labels.get(pipeline.last_run_state, "")
    return render(request, "pipelines/pipeline_list.html", {"pipelines": pipelines})


# --- the editor -----------------------------------------------------------------------------


def _editor(
    request: HttpRequest, form: SourceForm, pipeline: Pipeline | None = None, status: int = 200
) -> HttpResponse:
    can_save_version = pipeline is None or permissions.can(request.user, pipeline, Action.CHANGE)
    context = {"form": form, "pipeline": pipeline, "can_save_version": can_save_version}
    return render(request, "pipelines/pipeline_edit.html", context, status=status)


def _save(request: HttpRequest, form: SourceForm, pipeline: Pipeline | None) -> HttpResponse:
    if form.is_valid():
        source = form.cleaned_data["source"]
        try:
            version = services.pipeline_save(user=request.user, data=source, source=source)
        except ValidationError as exc:
            form.add_problems(_problems(exc))
        except PermissionDenied as exc:
            form.add_error(None, " ".join(getattr(exc, "messages", None) or [str(exc)]))
        else:
            messages.success(
                request,
                _("Saved %(name)s version %(n)d.") % {"name": version.pipeline.name, "n": version.number},
            )
            return redirect("pipeline-detail", pk=version.pipeline_id)
    return _editor(request, form, pipeline, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def pipeline_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _save(request, SourceForm(request.POST), None)
    return _editor(request, SourceForm(initial={"source": EXAMPLE}))


@login_required
@require_http_methods(["GET", "POST"])
def pipeline_edit(request: HttpRequest, pk: int) -> HttpResponse:
    pipeline = _pipeline(request, pk)
    if request.method == "POST":
        return _save(request, SourceForm(request.POST), pipeline)
    versions = pipeline.versions.all()
    number = request.GET.get("version", "")
    version = versions.filter(number=int(number)).first() if number.isdigit() else versions.first()
    if version is None and number:
        raise Http404(_("Not found."))
    return _editor(request, SourceForm(initial={"source": _source_of(version)}), pipeline)


@login_required
@require_POST
def pipeline_validate(request: HttpRequest) -> JsonResponse:
    """The editor's check as you type: the normalized spec's graph, or every problem by path."""
    source = request.POST.get("source", "")
    if len(source) > MAX_SOURCE:
        return JsonResponse(
            {"ok": False, "errors": {"spec": [_("must be at most %(n)d characters") % {"n": MAX_SOURCE}]}},
            status=400,
        )
    try:
        spec = services.pipeline_check(user=request.user, data=source)
    except ValidationError as exc:
        return JsonResponse({"ok": False, "errors": _problems(exc)}, status=400)
    return JsonResponse(
        {
            "ok": True,
            "name": spec["name"],
            "params": spec.get("params") or {},
            "steps": spec["steps"],
            "graph": graph_of(spec),
        }
    )


# --- a pipeline -----------------------------------------------------------------------------


def _render_detail(
    request: HttpRequest,
    pipeline: Pipeline,
    run_form: RunForm | None = None,
    schedule_form: ScheduleForm | None = None,
    status: int = 200,
) -> HttpResponse:
    user = request.user
    versions = list(pipeline.versions.select_related("created_by").defer("spec", "source")[:VERSIONS_SHOWN])
    latest = pipeline.versions.order_by("-number").first()
    runs = list(pipeline.runs.select_related("owner", "schedule", "version")[:RUNS_SHOWN])
    for run in runs:
        run.duration = _seconds(run.started_at, run.finished_at)
    schedules = list(pipeline.schedules.select_related("owner"))
    can_change = permissions.can(user, pipeline, Action.CHANGE)
    can_use = permissions.can_use_team(user, pipeline.team)
    for schedule in schedules:
        schedule.can_change = can_change or schedule.owner_id == user.pk
    context = {
        "pipeline": pipeline,
        "latest": latest,
        "versions": versions,
        "runs": runs,
        "schedules": schedules,
        "can_change": can_change,
        "can_use": can_use,
        "graph": graph_of(latest.spec) if latest else {"nodes": [], "edges": []},
        "run_form": run_form or (RunForm(spec=latest.spec) if latest else None),
        "schedule_form": schedule_form or ScheduleForm(),
    }
    return render(request, "pipelines/pipeline_detail.html", context, status=status)


@login_required
@require_GET
def pipeline_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _render_detail(request, _pipeline(request, pk))


@login_required
@require_GET
def version_detail(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    pipeline = _pipeline(request, pk)
    version = pipeline.versions.select_related("created_by").filter(number=number).first()
    if version is None:
        raise Http404(_("Not found."))
    context = {"pipeline": pipeline, "version": version, "source": _source_of(version), "graph": graph_of(version.spec)}
    return render(request, "pipelines/version_detail.html", context)


@login_required
@require_POST
def pipeline_run(request: HttpRequest, pk: int) -> HttpResponse:
    pipeline = _pipeline(request, pk)
    latest = pipeline.versions.order_by("-number").first()
    if latest is None:
        raise Http404(_("Not found."))
    form = RunForm(request.POST, spec=latest.spec)
    if form.is_valid():
        params = form.params()
        if form.is_valid():  # params() may add a field's problem (a list that is not JSON)
            try:
                run = services.run_submit(user=request.user, pipeline=pipeline, version=latest, params=params)
            except ValidationError as exc:
                form.add_problems(_problems(exc))
            except PermissionDenied as exc:
                form.add_error(None, " ".join(getattr(exc, "messages", None) or [str(exc)]))
            else:
                messages.success(request, _("Run %(run)s is queued.") % {"run": run.public_id})
                return redirect("pipeline-run-detail", run_id=run.public_id)
    return _render_detail(request, pipeline, run_form=form, status=400)


@login_required
@require_POST
def schedule_add(request: HttpRequest, pk: int) -> HttpResponse:
    pipeline = _pipeline(request, pk)
    form = ScheduleForm(request.POST)
    if form.is_valid():
        try:
            schedule = services.schedule_save(user=request.user, pipeline=pipeline, data=form.data_for_service())
        except ValidationError as exc:
            form.add_problems(_problems(exc))
        except PermissionDenied as exc:
            form.add_error(None, " ".join(getattr(exc, "messages", None) or [str(exc)]))
        else:
            messages.success(request, _("Schedule %(name)s saved.") % {"name": schedule.name})
            return redirect(reverse("pipeline-detail", kwargs={"pk": pipeline.pk}) + "#schedules")
    return _render_detail(request, pipeline, schedule_form=form, status=400)


@login_required
@require_POST
def schedule_pause(request: HttpRequest, pk: int, schedule_id: int, action: str) -> HttpResponse:
    pipeline = _pipeline(request, pk)
    schedule = Schedule.objects.filter(pipeline=pipeline, pk=schedule_id).first()
    if schedule is None or action not in ("pause", "resume"):
        raise Http404(_("Not found."))
    paused = action == "pause"
    try:
        services.schedule_save(user=request.user, pipeline=pipeline, schedule=schedule, data={"paused": paused})
    except (ValidationError, PermissionDenied) as exc:
        _say_refused(request, exc)
    else:
        text = _("Schedule %(name)s paused.") if paused else _("Schedule %(name)s resumed.")
        messages.success(request, text % {"name": schedule.name})
    return redirect(reverse("pipeline-detail", kwargs={"pk": pipeline.pk}) + "#schedules")


# --- a run ----------------------------------------------------------------------------------


def run_state(run: PipelineRun) -> dict[str, Any]:
    """A run's state for its page: the run's, and per step its state, message and jobs (the latest attempt of
    each item); three queries whatever the run's size."""
    steps = list(RunStep.objects.filter(run=run).order_by("position"))
    latest: dict[int, dict[int, StepJob]] = {}
    for row in StepJob.objects.filter(step__run=run).select_related("job").order_by("step_id", "item", "attempt"):
        latest.setdefault(row.step_id, {})[row.item] = row  # later attempts replace earlier ones
    labels = dict(StepState.choices)
    payload_steps = {}
    for step in steps:
        jobs = []
        for item, row in sorted(latest.get(step.pk, {}).items()):
            job = row.job
            jobs.append(
                {
                    "item": item,
                    "attempt": row.attempt,
                    "id": job.public_id if job else "",
                    "url": reverse("job-detail", kwargs={"public_id": job.public_id}) if job else "",
                    "state": job.state if job else "",
                    "label": job.get_state_display() if job else "",
                }
            )
        payload_steps[step.name] = {
            "state": step.state,
            "label": str(labels.get(step.state, step.state)),
            "message": step.message,
            "foreach": step.items is not None,
            "jobs": jobs,
        }
    return {
        "id": run.public_id,
        "state": run.state,
        "label": run.get_state_display(),
        "active": run.state in RUN_ACTIVE,
        "stop_requested": run.stop_requested,
        "message": run.message,
        "steps": payload_steps,
    }


def _outputs_of(step: RunStep) -> list[dict[str, Any]]:
    """A step's outputs as rows: kind, name, value (a foreach step's as the list it is)."""
    rows = []
    outputs = step.outputs or {}
    for kind in ("parameters", "artifacts"):
        for name, value in (outputs.get(kind) or {}).items():
            text = value if isinstance(value, str) else json.dumps(value)
            rows.append({"kind": kind, "name": name, "value": text})
    return rows


@login_required
@require_GET
def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    run = _run(request, run_id)
    user = request.user
    can_change = permissions.can(user, run, Action.CHANGE)
    state = run_state(run)
    steps = list(RunStep.objects.filter(run=run).select_related("cached_from__run").order_by("position"))
    for step in steps:
        step.outputs_rows = _outputs_of(step)
        step.jobs_shown = state["steps"][step.name]["jobs"]
        step.duration = _seconds(step.started_at, step.finished_at)
        step.can_retry = (
            can_change and run.engine == Engine.PORTAL and step.state in (StepState.FAILED, StepState.STOPPED)
        )
    context = {
        "run": run,
        "duration": _seconds(run.started_at, run.finished_at),
        "steps": steps,
        "params": sorted((run.params or {}).items()),
        "graph": graph_of(run.version.spec),
        "state": state,
        "can_change": can_change,
        "can_stop": can_change and run.state in RUN_ACTIVE and not run.stop_requested,
        "can_rerun": permissions.can_use_team(user, run.team) and run.engine == Engine.PORTAL,
    }
    return render(request, "pipelines/run_detail.html", context)


@login_required
@require_GET
def run_state_json(request: HttpRequest, run_id: str) -> JsonResponse:
    return JsonResponse(run_state(_run(request, run_id)))


@login_required
@require_POST
def run_stop(request: HttpRequest, run_id: str) -> HttpResponse:
    run = _run(request, run_id)
    try:
        services.run_stop(run=run, user=request.user)
    except (ActionRefused, PermissionDenied, ValidationError) as exc:
        _say_refused(request, exc)
    else:
        messages.success(request, _("Run %(run)s is stopping.") % {"run": run.public_id})
    return redirect("pipeline-run-detail", run_id=run.public_id)


@login_required
@require_POST
def run_retry(request: HttpRequest, run_id: str) -> HttpResponse:
    run = _run(request, run_id)
    step = request.POST.get("step", "")
    try:
        services.run_retry_step(run=run, step_name=step, user=request.user)
    except (ActionRefused, PermissionDenied, ValidationError) as exc:
        _say_refused(request, exc)
    else:
        messages.success(request, _("Step %(step)s is retried.") % {"step": step})
    return redirect("pipeline-run-detail", run_id=run.public_id)


@login_required
@require_POST
def run_rerun(request: HttpRequest, run_id: str) -> HttpResponse:
    run = _run(request, run_id)
    step = request.POST.get("step", "")
    try:
        new = services.run_rerun_from(run=run, step_name=step, user=request.user)
    except (ActionRefused, PermissionDenied, ValidationError) as exc:
        _say_refused(request, exc)
        return redirect("pipeline-run-detail", run_id=run.public_id)
    messages.success(request, _("Run %(run)s reruns from %(step)s.") % {"run": new.public_id, "step": step})
    return redirect("pipeline-run-detail", run_id=new.public_id)
