"""The portal's pipeline engine: one tick advances every active run, in bulk.

A tick reads the active runs, their steps and the jobs of their running steps in three queries, however many
runs and however many of their steps have ended, then for each run:

- a stop that was asked for stops the run's jobs and ends its unfinished steps ``stopped``;
- a queued run starts when its schedule's concurrency allows (an Argo run: its Workflow is created);
- a running step whose jobs ended collects their outputs and succeeds, retries a failed job after its back-off,
  or fails;
- a waiting step whose required steps all ended is skipped (``depends`` false, or ``when`` false), is a cache
  hit, or starts its job(s): one per foreach item;
- a run whose steps all ended ends.

Every start is idempotent: a step's job is recorded with its ``StepJob`` row (unique per step, item and attempt)
in one transaction, so a tick delivered twice, or two ticks at once, start it once, and a worker killed half
way loses nothing: the next tick sees what was written and goes on from there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Max
from django.utils import timezone
from django.utils.translation import gettext as _

from jobs import quota as quotas
from jobs.models import Job, Task
from jobs.services import job_submit
from jobs.state import JobState
from pipelines import actions
from pipelines import outputs as step_outputs
from pipelines.models import (
    RUN_ACTIVE,
    STEP_FINAL,
    Engine,
    PipelineRun,
    PipelineVersion,
    RunState,
    RunStep,
    StepJob,
    StepState,
)
from pipelines.services import run_transition, step_update, stop_jobs
from pipelines.spec import expressions, templating

log = logging.getLogger(__name__)

MAX_BACKOFF = 3600
MAX_ITEMS = 200
REGISTER_LEASE_S = 120  # a register_model step claimed longer ago than this by a tick that never ended it
_specs: dict[int, dict] = {}  # the specs of the runs of the tick under way, by version


@dataclass
class Tick:
    runs: int = 0
    started: int = 0
    ended: int = 0
    skipped: int = 0
    cached: int = 0
    queries: int = 0
    messages: list[str] = field(default_factory=list)


def _spec(version_id: int) -> dict:
    return _specs[version_id]


def _load_specs(version_ids: set[int]) -> None:
    """The tick's specs, in one query (a version's spec never changes, but a process may outlive a database)."""
    _specs.clear()
    _specs.update(PipelineVersion.objects.filter(pk__in=version_ids).values_list("pk", "spec"))


def advance(now=None) -> Tick:
    """One tick over every active run."""
    now = now or timezone.now()
    tick = Tick()
    runs = list(
        PipelineRun.objects.filter(state__in=RUN_ACTIVE)
        .select_related("pipeline", "team", "owner", "schedule")
        .order_by("created_at", "id")
    )
    if not runs:
        return tick
    tick.runs = len(runs)
    _load_specs({run.version_id for run in runs})
    by_run: dict[int, list[RunStep]] = defaultdict(list)
    for step in RunStep.objects.filter(run__in=[r.pk for r in runs]).defer("outputs").order_by("run_id", "position"):
        by_run[step.run_id].append(step)
    live = [s.pk for steps in by_run.values() for s in steps if s.state in (StepState.RUNNING, StepState.RETRYING)]
    attempts: dict[int, list[StepJob]] = defaultdict(list)
    if live:
        for attempt in StepJob.objects.filter(step_id__in=live).select_related("job").only(
            "pk", "step_id", "item", "attempt", "outcome", "retry_at",
            "job__id", "job__public_id", "job__state", "job__framework", "job__message", "job__reason",
        ).order_by("step_id", "item", "attempt"):  # fmt: skip
            attempts[attempt.step_id].append(attempt)
    active_by_schedule = _active_by_schedule(runs)
    argo_runs = []
    for run in runs:
        try:
            if run.engine == Engine.ARGO:
                if _argo_run(run, now, active_by_schedule):
                    argo_runs.append(run)
                continue
            _advance_run(run, by_run[run.pk], attempts, now, tick, active_by_schedule)
        except Exception:  # one run's trouble must not hold up the others
            log.exception("advancing pipeline run %s failed", run.public_id)
    if argo_runs:
        from pipelines import argo

        argo.sync(argo_runs)
    return tick


def _active_by_schedule(runs: list[PipelineRun]) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for run in runs:
        if run.schedule_id and run.state == RunState.RUNNING and not run.stop_requested:
            counts[run.schedule_id] += 1  # a run being stopped (replaced) no longer counts
    return counts


def _may_start(run: PipelineRun, active_by_schedule: dict[int, int]) -> bool:
    """A scheduled run starts while its schedule has fewer running runs than it allows."""
    if not run.schedule_id or run.schedule is None:
        return True
    if active_by_schedule[run.schedule_id] >= max(1, run.schedule.max_active):
        return False
    active_by_schedule[run.schedule_id] += 1
    return True


def _argo_run(run: PipelineRun, now, active_by_schedule) -> bool:
    """An Argo run: started (its Workflow made) when its turn comes; True when the sync pass should read it."""
    from pipelines import argo

    if run.state == RunState.QUEUED:
        if run.stop_requested:
            run_transition(run, RunState.STOPPED, reason="Stopped", message=_("stopped before it started"))
            RunStep.objects.filter(run=run, state=StepState.WAITING).update(state=StepState.STOPPED, finished_at=now)
            return False
        if not _may_start(run, active_by_schedule):
            return False
        try:
            argo.start(run)
        except ValidationError as exc:
            run_transition(run, RunState.FAILED, reason="WorkflowRefused", message=_error_text(exc))
            return False
        run_transition(run, RunState.RUNNING, reason="Started")
    return bool(run.workflow)


def _error_text(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{path}: {m}" for path, messages in exc.message_dict.items() for m in messages)
    return "; ".join(exc.messages)


# --- one run --------------------------------------------------------------------------


def _advance_run(run, steps: list[RunStep], attempts, now, tick: Tick, active_by_schedule) -> None:
    spec = _spec(run.version_id)
    if run.stop_requested:
        _stop_run(run, steps, now)
        return
    if run.state == RunState.QUEUED:
        if not _may_start(run, active_by_schedule):
            return
        run_transition(run, RunState.RUNNING, reason="Started")
    specs = {s["name"]: s for s in spec["steps"]}
    by_name = {step.name: step for step in steps}
    for step in steps:
        if step.state in (StepState.RUNNING, StepState.RETRYING):
            _follow(run, step, specs[step.name], attempts.get(step.pk, []), by_name, now, tick)
    changed = True
    while changed:  # a skip may settle what waits on it: go round until nothing moves
        changed = False
        for step in steps:
            if step.state == StepState.WAITING and _ready(specs[step.name], by_name):
                changed |= _settle(run, step, specs[step.name], spec, by_name, now, tick)
    if all(step.state in STEP_FINAL for step in steps):
        _end_run(run, spec, steps)
        tick.ended += 1


def _ready(step_spec: dict, by_name: dict[str, RunStep]) -> bool:
    return all(by_name[name].state in STEP_FINAL for name in step_spec.get("requires") or [])


def _stop_run(run: PipelineRun, steps: list[RunStep], now) -> None:
    stop_jobs(run)
    for step in steps:
        if step.state not in STEP_FINAL:
            step_update(step, state=StepState.STOPPED, message=_("the run was stopped"))
    run_transition(run, RunState.STOPPED, reason="Stopped", message=_("stopped on request"))


def _end_run(run: PipelineRun, spec: dict, steps: list[RunStep]) -> None:
    handled = set()
    for step_spec in spec["steps"]:
        for name in re.findall(r"([a-z][a-z0-9-]*)\.(?:failed|completed)\b", step_spec.get("depends") or ""):
            handled.add(name)
    failed = [s for s in steps if s.state == StepState.FAILED and s.name not in handled]
    stopped = [s for s in steps if s.state == StepState.STOPPED]
    if failed:
        first = failed[0]
        run_transition(
            run, RunState.FAILED, reason="StepFailed",
            message=_("step %(step)s failed: %(message)s") % {"step": first.name, "message": first.message or "-"},
        )  # fmt: skip
    elif stopped:
        run_transition(
            run,
            RunState.FAILED,
            reason="StepStopped",
            message=_("step %(step)s was stopped") % {"step": stopped[0].name},
        )
    else:
        run_transition(run, RunState.SUCCESS, reason="Succeeded")


# --- a waiting step -------------------------------------------------------------------------


def _settle(run, step: RunStep, step_spec: dict, spec: dict, by_name, now, tick: Tick) -> bool:
    """Decide a waiting step whose required steps ended: skip it, take it from the cache, or start it."""
    if step_spec.get("depends"):
        states = {name: by_name[name].state for name in step_spec.get("requires") or []}
        if not expressions.eval_depends(expressions.parse_depends(step_spec["depends"]), states):
            tick.skipped += 1
            return step_update(
                step, state=StepState.SKIPPED, message=_("its depends is false"), expect=StepState.WAITING
            )
    done = _outputs_of(run, spec, step_spec)
    context = _Context(run, done, _cluster_kind(run, step_spec))
    if step_spec.get("when"):
        try:
            go = expressions.eval_when(expressions.parse_when(step_spec["when"]), context.lookup(None))
        except (KeyError, templating.RenderError, expressions.ExpressionError) as exc:
            return step_update(
                step, state=StepState.FAILED, message=_("when: %(error)s") % {"error": exc}, expect=StepState.WAITING
            )
        if not go:
            tick.skipped += 1
            return step_update(step, state=StepState.SKIPPED, message=_("its when is false"), expect=StepState.WAITING)
    if step_spec.get("register_model"):
        return _register(run, step, step_spec, context, tick)
    try:
        items = _items(step_spec, context)
        datas = [
            _job_data(run, step_spec, context, item, i if items is not None else None)
            for i, item in enumerate(items if items is not None else [None])
        ]
    except (KeyError, ValueError, templating.RenderError) as exc:
        return step_update(
            step,
            state=StepState.FAILED,
            message=_("cannot render its job: %(error)s") % {"error": exc},
            expect=StepState.WAITING,
        )
    key = _cache_key(step_spec, datas, context) if step_spec.get("cache") else ""
    if key:
        hit = (
            RunStep.objects.filter(cache_key=key, state=StepState.SUCCESS, run__team_id=run.team_id)
            .exclude(run_id=run.pk)
            .order_by("-finished_at")
            .first()
        )
        if hit is not None:
            tick.cached += 1
            done_ok = step_update(
                step, state=StepState.CACHED, outputs=hit.outputs, items=hit.items, cached_from=hit, cache_key=key,
                message=_("cached: the outputs of %(run)s/%(step)s") % {"run": hit.run.public_id, "step": hit.name},
                expect=StepState.WAITING,
            )  # fmt: skip
            if done_ok:
                by_name[step.name].outputs = hit.outputs
            return done_ok
    if items is not None and not items:
        return step_update(
            step, state=StepState.SUCCESS, items=[], outputs=step_outputs.fan_in([]), cache_key=key,
            message=_("no items"), expect=StepState.WAITING,
        )  # fmt: skip
    if not step_update(step, state=StepState.RUNNING, items=items, cache_key=key, message="", expect=StepState.WAITING):
        return False
    # A step retried by hand numbers its attempts on from its earlier jobs.
    first = 1 + (StepJob.objects.filter(step=step).aggregate(n=Max("attempt"))["n"] or 0)
    for index, data in enumerate(datas):
        problem = _start(run, step, index, first, data)
        if problem:
            step_update(step, state=StepState.FAILED, message=problem)
            stop_jobs_of_step(step)
            return True
        tick.started += 1
    return True


def _register(run, step: RunStep, step_spec: dict, context: _Context, tick: Tick) -> bool:
    """A ``register_model`` step: claimed (running), done by the portal with the run owner's rights, ended."""
    try:
        config = templating.render(step_spec["register_model"], context.lookup(None))
    except (KeyError, templating.RenderError) as exc:
        return step_update(
            step,
            state=StepState.FAILED,
            message=_("cannot render it: %(error)s") % {"error": exc},
            expect=StepState.WAITING,
        )
    if not step_update(step, state=StepState.RUNNING, message="", expect=StepState.WAITING):
        return False  # another tick has it
    try:
        made = actions.run("register_model", user=run.owner, config=config)
    except (ValidationError, PermissionDenied, actions.ActionUnavailableError) as exc:
        text = _error_text(exc) if isinstance(exc, ValidationError) else str(exc)
        step_update(step, state=StepState.FAILED, message=_("not registered: %(error)s") % {"error": text})
        return True
    outputs = {"parameters": {**made, "job_id": config["from"]}, "artifacts": {}, "digests": {}}
    tick.started += 1
    step_update(
        step, state=StepState.SUCCESS, outputs=outputs,
        message=_("registered %(model)s version %(version)s") % made,
    )  # fmt: skip
    return True


def _cluster_kind(run, step_spec: dict) -> str:
    if not step_spec.get("job"):
        return "local"
    name = step_spec["job"].get("cluster") or ""
    if "{{" in name:
        name = ""
    cluster = quotas.cluster_with_team_quota(run.team_id, name)
    return cluster.kind if cluster is not None else "local"


class _Context:
    """Values a step's templates and ``when`` read: the run's params, earlier steps' outputs, the item."""

    def __init__(self, run: PipelineRun, done: dict[str, RunStep], cluster_kind: str) -> None:
        self.run = run
        self.done = done
        self.local = cluster_kind == "local"
        self.inputs: dict[str, str] = {}  # input name -> "j-…/model_dir/…" (the job spec's inputs)
        self.digests: dict[str, str] = {}  # input name -> the artifact's digest
        for name, step in done.items():
            outs = step.outputs or {}
            for artifact, source in (outs.get("artifacts") or {}).items():
                digests = (outs.get("digests") or {}).get(artifact)
                if isinstance(source, list):
                    for i, one in enumerate(source):
                        if one:
                            self._input(f"{name}_{artifact}_{i}", one, digests[i] if isinstance(digests, list) else "")
                elif source:
                    self._input(f"{name}_{artifact}", source, digests or "")

    def _input(self, name: str, source: str, digest: str) -> None:
        name = input_name(name)
        self.inputs[name] = source
        self.digests[name] = digest

    def artifact_path(self, step: str, artifact: str, index: int | None = None) -> str:
        name = input_name(f"{step}_{artifact}" + (f"_{index}" if index is not None else ""))
        if self.local:
            return str(Path(settings.EASYAI_STORAGE_ROOT) / self.inputs[name])
        return f"/inputs/{name}"

    def lookup(self, item: Any):
        def lookup(ref: str) -> Any:
            kind = templating.classify(ref)
            if kind[0] == "param":
                return self.run.params[kind[1]]
            if kind[0] == "step":
                outs = self.done[kind[1]].outputs or {}
                if kind[2] == "job_id":
                    return outs["parameters"]["job_id"]
                if kind[2] == "parameters":
                    return outs["parameters"][kind[3]]
                source = outs["artifacts"][kind[3]]
                if isinstance(source, list):
                    return [self.artifact_path(kind[1], kind[3], i) for i in range(len(source))]
                return self.artifact_path(kind[1], kind[3])
            if kind[0] == "item":
                if item is None:
                    raise KeyError(ref)
                return item if kind[1] is None else item[kind[1]]
            if kind[0] == "schedule":
                return self.run.scheduled_for.isoformat() if self.run.scheduled_for else ""
            if kind[0] == "run":
                return self.run.public_id
            raise KeyError(ref)

        return lookup


def input_name(name: str) -> str:
    name = name.replace("-", "_")
    if len(name) > 63:
        name = "i" + hashlib.sha256(name.encode()).hexdigest()[:40]
    return name


def _ancestors(spec: dict, name: str) -> set[str]:
    requires = {s["name"]: set(s.get("requires") or []) for s in spec["steps"]}
    found, todo = set(), list(requires[name])
    while todo:
        one = todo.pop()
        if one not in found:
            found.add(one)
            todo += requires.get(one, ())
    return found


def _outputs_of(run, spec: dict, step_spec: dict) -> dict[str, RunStep]:
    """The ended ancestors of a step, with their outputs (read only when a step is settled)."""
    names = _ancestors(spec, step_spec["name"])
    if not names:
        return {}
    return {s.name: s for s in RunStep.objects.filter(run=run, name__in=names).only("pk", "name", "state", "outputs")}


def _items(step_spec: dict, context: _Context) -> list | None:
    foreach = step_spec.get("foreach")
    if foreach is None:
        return None
    if isinstance(foreach, list):
        items = foreach
    else:
        items = templating.render(foreach, context.lookup(None))
        if isinstance(items, str):
            items = json.loads(items)
    if not isinstance(items, list):
        raise ValueError(_("foreach gave %(type)s, not a list") % {"type": type(items).__name__})
    if len(items) > MAX_ITEMS:
        raise ValueError(_("foreach gave %(n)d items; at most %(max)d") % {"n": len(items), "max": MAX_ITEMS})
    return items


def _job_data(run, step_spec: dict, context: _Context, item: Any, index: int | None) -> dict:
    data = templating.render_job(step_spec["job"], context.lookup(item))
    name = f"{run.pipeline.name}-{step_spec['name']}"
    suffix = f"-{index}" if index is not None else ""
    name = name[: 63 - len(suffix)].rstrip("-") + suffix
    data = {**data, "name": name, "team": run.team.slug}
    data.setdefault("experiment", f"pipeline {run.pipeline.name}")
    if step_spec.get("timeout"):
        data["timeout"] = f"{step_spec['timeout']}s"
    if context.inputs:
        data["inputs"] = {**(data.get("inputs") or {}), **context.inputs}
    return data


def _cache_key(step_spec: dict, datas: list[dict], context: _Context) -> str:
    """The step's rendered job(s) and the digests of what they read, plus the cache's version."""
    canonical = []
    for data in datas:
        data = {k: v for k, v in data.items() if k != "name"}
        inputs = data.pop("inputs", None) or {}
        data["inputs"] = {name: context.digests.get(name) or source for name, source in sorted(inputs.items())}
        canonical.append(data)
    body = json.dumps({"cache": step_spec.get("cache"), "jobs": canonical}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _start(run, step: RunStep, item: int, attempt: int, data: dict) -> str:
    """Start one job of a step (its StepJob row and its job in one transaction); "" or why it cannot start."""
    try:
        with transaction.atomic():
            row = StepJob.objects.create(step=step, item=item, attempt=attempt)
            job = job_submit(user=run.owner, data=data)
            StepJob.objects.filter(pk=row.pk).update(job=job)
    except IntegrityError:
        return ""  # another tick started it
    except ValidationError as exc:
        return _("its job was refused: %(error)s") % {"error": _error_text(exc)}
    return ""


def stop_jobs_of_step(step: RunStep) -> None:
    from jobs.services import job_stop
    from jobs.state import ACTIVE

    for job in Job.objects.filter(pk__in=StepJob.objects.filter(step=step).values("job_id"), state__in=ACTIVE):
        job_stop(job=job, reason="StepFailed", message=_("another item of its step failed"))


# --- a running step -----------------------------------------------------------------------


_OUTCOME = {JobState.SUCCESS: "success", JobState.FAILED: "failed", JobState.STOPPED: "stopped"}


def _follow(run, step: RunStep, step_spec: dict, rows: list[StepJob], by_name, now, tick: Tick) -> None:
    """A running step: note its jobs' ends, start retries that are due, and end it once every item ended."""
    if step_spec.get("register_model"):
        # Claimed by a tick that did not finish (its lease long gone): whether the model was registered is not
        # known here.
        if step.started_at is None or now - step.started_at > timedelta(seconds=REGISTER_LEASE_S):
            step_update(step, state=StepState.FAILED, message=_("interrupted while registering: see the model registry"))
        return
    count = len(step.items) if step.items is not None else 1
    latest: dict[int, StepJob] = {}
    for row in rows:
        latest[row.item] = row  # ordered by attempt: the last is the latest
    retry = step_spec.get("retry") or {}
    for index in range(count):
        row = latest.get(index)
        if row is None:
            continue  # a tick that died between two items' starts: started again below
        if row.outcome == "" and row.job is not None and row.job.state in _OUTCOME:
            outcome = _OUTCOME[row.job.state]
            retry_at = None
            if outcome == "failed" and row.attempt <= int(retry.get("limit") or 0):
                backoff = min(MAX_BACKOFF, float(retry.get("backoff") or 0) * (2 ** (row.attempt - 1)))
                retry_at = now + timedelta(seconds=backoff)
            if StepJob.objects.filter(pk=row.pk, outcome="").update(outcome=outcome, retry_at=retry_at):
                row.outcome, row.retry_at = outcome, retry_at
        due = row.outcome == "failed" and row.retry_at is not None and row.retry_at <= now
        if due and _retry(run, step, step_spec, row, by_name):
            tick.started += 1
            return  # read again next tick
    missing = [i for i in range(count) if i not in latest]
    if missing:
        spec = _spec(run.version_id)
        context = _Context(run, _outputs_of(run, spec, step_spec), _cluster_kind(run, step_spec))
        for index in missing:
            item = step.items[index] if step.items is not None else None
            data = _job_data(run, step_spec, context, item, index if step.items is not None else None)
            problem = _start(run, step, index, 1, data)
            if problem:
                step_update(step, state=StepState.FAILED, message=problem)
                return
            tick.started += 1
        return
    rows_now = [latest[i] for i in range(count)]
    if any(r.outcome == "" for r in rows_now):
        if step.state != StepState.RUNNING:
            step_update(step, state=StepState.RUNNING)
        return
    if any(r.outcome == "failed" and r.retry_at is not None for r in rows_now):
        if step.state != StepState.RETRYING:
            step_update(step, state=StepState.RETRYING, message=_("retrying after a failure"))
        return
    if all(r.outcome == "success" for r in rows_now):
        _succeed(step, step_spec, rows_now)
    elif any(r.outcome == "failed" for r in rows_now):
        bad = next(r for r in rows_now if r.outcome == "failed").job
        why = (bad.message or bad.reason) if bad is not None else ""
        step_update(
            step, state=StepState.FAILED,
            message=_("job %(job)s failed: %(message)s") % {"job": bad.public_id if bad else "?", "message": why or "-"},
        )  # fmt: skip
    else:
        step_update(step, state=StepState.STOPPED, message=_("its job was stopped"))


def _retry(run, step: RunStep, step_spec: dict, row: StepJob, by_name) -> bool:
    spec = _spec(run.version_id)
    context = _Context(run, _outputs_of(run, spec, step_spec), _cluster_kind(run, step_spec))
    item = step.items[row.item] if step.items is not None else None
    data = _job_data(run, step_spec, context, item, row.item if step.items is not None else None)
    with transaction.atomic():
        if not StepJob.objects.filter(pk=row.pk, retry_at__isnull=False).update(retry_at=None):
            return False
        problem = _start(run, step, row.item, row.attempt + 1, data)
        if problem:
            step_update(step, state=StepState.FAILED, message=problem)
            return False
        step_update(step, state=StepState.RUNNING, message=_("attempt %(n)d") % {"n": row.attempt + 1})
    return True


def _succeed(step: RunStep, step_spec: dict, rows: list[StepJob]) -> None:
    jobs = {r.job_id: r.job for r in rows}
    tasks: dict[int, list[Task]] = defaultdict(list)
    for task in Task.objects.filter(job_id__in=list(jobs)).only("pk", "job_id", "role", "index", "exit_code"):
        tasks[task.job_id].append(task)
    try:
        per_item = [step_outputs.collect(step_spec, r.job, tasks[r.job_id]) for r in rows]
    except step_outputs.OutputMissingError as exc:
        step_update(step, state=StepState.FAILED, message=_("output missing: %(error)s") % {"error": exc})
        return
    outs = step_outputs.fan_in(per_item) if step.items is not None else per_item[0]
    step_update(step, state=StepState.SUCCESS, outputs=outs, message="")


def active_runs_exist() -> bool:
    return PipelineRun.objects.filter(state__in=RUN_ACTIVE).exists()


def counts() -> dict[str, int]:
    """Runs by state (for /metrics and the admin)."""
    return dict(PipelineRun.objects.values_list("state").annotate(n=Count("id")).values_list("state", "n"))


__all__ = ["Tick", "active_runs_exist", "advance", "counts", "input_name"]
