"""Pipelines' services: save a version, start a run, stop it, retry a step, rerun from a step, and the two writers
of a run's and a step's state (compare-and-set, as jobs' ``job_transition``).

Pages, the API, the CLI (through the API) and admin actions call these; the engine (``engine.py``) and the Argo
sync (``argo.py``) move states through ``run_transition`` and ``step_update`` only.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.models import Cluster
from jobs import quota as quotas
from jobs.models import Job
from jobs.services import job_stop
from jobs.state import ACTIVE as JOB_ACTIVE
from pipelines import spec as pipeline_spec
from pipelines.models import (
    RUN_ACTIVE,
    RUN_FINAL,
    STEP_FINAL,
    Engine,
    Pipeline,
    PipelineRun,
    PipelineVersion,
    RunState,
    RunStep,
    Schedule,
    StepJob,
    StepState,
    new_run_id,
)
from teams import permissions
from teams.exceptions import ActionRefused
from teams.models import Team
from teams.selectors import current_team_for

log = logging.getLogger(__name__)

MAX_PARAM_TEXT = 10_000


class PipelineActionRefused(ActionRefused):
    """A pipeline action its object's state does not allow (stop a finished run, retry a step that did not fail)."""


def _enqueue(func: str, *args: Any) -> None:
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(func, *args))


def wake_engine() -> None:
    """Ask for an engine tick now (after the commit), rather than at the clock's next look."""
    from pipelines import schedule

    transaction.on_commit(schedule.enqueue_advance)


# --- pipelines and versions ---------------------------------------------------------


def _spec_of(data: Any) -> dict:
    if isinstance(data, str):
        try:
            data = pipeline_spec.parse(data)
        except pipeline_spec.SpecError as exc:
            raise ValidationError(exc.errors) from None
    try:
        return pipeline_spec.validate(data)
    except pipeline_spec.SpecError as exc:
        raise ValidationError(exc.errors) from None


def pipeline_check(*, user, data: Any) -> dict:
    """Validate a spec (text or data) for the editor: the normalized spec, or ValidationError naming every path."""
    return _spec_of(data)


def pipeline_save(*, user, data: Any, source: str = "") -> PipelineVersion:
    """Validate a spec and save it as the next version of its pipeline (made on first save).

    The team is the spec's (one the user works in) or the user's current team. A new pipeline is its saver's; a
    new version of an existing one is saved by its owner or a team admin."""
    spec = _spec_of(data)
    if spec.get("team"):
        team = permissions.visible_teams(user).filter(slug=spec["team"]).first()
        if team is None or not permissions.can_use_team(user, team):
            raise ValidationError({"team": [_("No team %(team)r that you belong to.") % {"team": spec["team"]}]})
    else:
        team = current_team_for(user)
        if team is None:
            raise ValidationError({"team": [_("You are in no team: name one, or ask a team admin to add you.")]})
    if not source:
        source = pipeline_spec.to_text(spec) if hasattr(pipeline_spec, "to_text") else ""
    spec = {**spec, "team": team.slug}
    with transaction.atomic():
        pipeline, made = Pipeline.objects.select_for_update().get_or_create(
            team=team, name=spec["name"], defaults={"owner": user, "description": spec.get("description", "")}
        )
        if not made and not permissions.can(user, pipeline, permissions.Action.CHANGE):
            raise PermissionDenied(_("Only the pipeline's owner or a team admin saves a new version of it."))
        number = pipeline.latest + 1
        version = PipelineVersion.objects.create(
            pipeline=pipeline, number=number, spec=spec, source=source, created_by=user
        )
        Pipeline.objects.filter(pk=pipeline.pk).update(
            latest=number, description=spec.get("description", ""), updated_at=timezone.now()
        )
        pipeline.latest = number
    version.pipeline = pipeline
    return version


# --- params -------------------------------------------------------------------------


def _coerce(kind: str, value: Any, path: str, errors: dict[str, list[str]]) -> Any:
    """A param's value as its type; text (the CLI's key=value, a form) is read as the type."""
    try:
        if kind == "string":
            if isinstance(value, bool | int | float):
                return str(value).lower() if isinstance(value, bool) else str(value)
            if not isinstance(value, str):
                raise ValueError
            if len(value) > MAX_PARAM_TEXT:
                errors[path] = [_("must be at most %(n)d characters") % {"n": MAX_PARAM_TEXT}]
                return None
            return value
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, int):
                return value
            if isinstance(value, str):
                return int(value.strip())
            raise ValueError
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, int | float):
                return float(value)
            if isinstance(value, str):
                return float(value.strip())
            raise ValueError
        if kind == "list":
            if isinstance(value, str):
                import json

                value = json.loads(value)
            if not isinstance(value, list):
                raise ValueError
            return value
    except ValueError:
        pass
    errors[path] = [_("must be a %(type)s") % {"type": kind}]
    return None


def resolve_params(spec: dict, given: dict | None) -> dict:
    """Every param of the spec: the given value (as its type) or its default; ValidationError names each problem."""
    given = dict(given or {})
    errors: dict[str, list[str]] = {}
    if not isinstance(given, dict):
        raise ValidationError({"params": [_("must be a mapping of names to values")]})
    declared = spec.get("params") or {}
    for name in given:
        if name not in declared:
            errors[f"params.{name}"] = [
                _("unknown param; the pipeline has: %(names)s") % {"names": ", ".join(declared) or "-"}
            ]
    params: dict[str, Any] = {}
    for name, decl in declared.items():
        if name in given and given[name] is not None:
            params[name] = _coerce(decl["type"], given[name], f"params.{name}", errors)
        elif decl.get("default") is not None:
            params[name] = decl["default"]
        else:
            errors[f"params.{name}"] = [_("required: the pipeline gives it no default")]
    if errors:
        raise ValidationError(errors)
    return params


# --- runs ---------------------------------------------------------------------------


def _engine_for(team: Team, spec: dict) -> tuple[str, Cluster | None]:
    """The portal's engine, unless the steps' cluster says ``pipeline_engine: argo`` (then every step is there)."""
    names = {(step["job"].get("cluster") or "") for step in spec["steps"] if isinstance(step.get("job"), dict)}
    cluster = quotas.cluster_with_team_quota(team.pk, sorted(names)[0] if names else "")
    if cluster is None or cluster.kind != "kubernetes" or (cluster.settings or {}).get("pipeline_engine") != "argo":
        return Engine.PORTAL, None
    if len(names) > 1:
        raise ValidationError(
            {
                "steps": [
                    _("On an Argo cluster every step runs on it: the steps name %(names)s.")
                    % {"names": ", ".join(sorted(n or "(default)" for n in names))}
                ]
            }
        )
    return Engine.ARGO, cluster


def run_submit(
    *,
    user,
    pipeline: Pipeline,
    version: PipelineVersion | None = None,
    params: dict | None = None,
    schedule: Schedule | None = None,
    scheduled_for: datetime | None = None,
    rerun_of: PipelineRun | None = None,
    rerun_from: str = "",
    reuse: dict[str, RunStep] | None = None,
) -> PipelineRun:
    """Record a run of a version (the latest by default) with its params, queued for the engine.

    A team-mate may run the team's pipelines. ``reuse``: steps of an earlier run whose outcome and outputs this run
    takes as they are (a rerun from a step); they start ``cached``."""
    if not permissions.can_use_team(user, pipeline.team):
        raise PermissionDenied(_("Only members of the pipeline's team may run it."))
    version = version or pipeline.versions.order_by("-number").first()
    if version is None:
        raise ValidationError({"version": [_("The pipeline has no version.")]})
    spec = version.spec
    values = resolve_params(spec, params)
    engine, cluster = _engine_for(pipeline.team, spec)
    if engine == Engine.ARGO and reuse:
        raise ValidationError({"step": [_("A rerun from a step runs on the portal's engine only.")]})
    now = timezone.now()
    reuse = reuse or {}
    for _attempt in range(5):
        try:
            with transaction.atomic():
                run = PipelineRun.objects.create(
                    pipeline=pipeline, version=version, team=pipeline.team, owner=user, params=values,
                    engine=engine, cluster=cluster, schedule=schedule, scheduled_for=scheduled_for,
                    rerun_of=rerun_of, rerun_from=rerun_from,
                )  # fmt: skip
                RunStep.objects.bulk_create(
                    [
                        RunStep(
                            run=run,
                            name=step["name"],
                            position=i,
                            state=StepState.CACHED if step["name"] in reuse else StepState.WAITING,
                            outputs=reuse[step["name"]].outputs if step["name"] in reuse else {},
                            items=reuse[step["name"]].items if step["name"] in reuse else None,
                            cached_from=_origin(reuse[step["name"]]) if step["name"] in reuse else None,
                            message=_("reused from %(run)s") % {"run": rerun_of.public_id}
                            if step["name"] in reuse and rerun_of
                            else "",
                            finished_at=now if step["name"] in reuse else None,
                        )  # fmt: skip
                        for i, step in enumerate(spec["steps"])
                    ]
                )
                wake_engine()
            return run
        except IntegrityError:
            if (
                schedule is not None
                and PipelineRun.objects.filter(schedule=schedule, scheduled_for=scheduled_for).exists()
            ):
                raise
            continue  # a public id drawn twice: draw again
    raise IntegrityError("no free run id after 5 draws")


def _origin(step: RunStep) -> RunStep:
    return step.cached_from if step.cached_from_id else step


def run_transition(run: PipelineRun, state: str, *, reason: str = "", message: str = "", actor=None) -> bool:
    """Move a run to a state (compare-and-set on its current state); a final state never changes, except a failed
    run that a step retry reopens. Notifies on commit when the run ends."""
    if run.state == state:
        return False
    if run.state in RUN_FINAL and not (run.state == RunState.FAILED and state == RunState.RUNNING):
        return False
    now = timezone.now()
    fields: dict[str, Any] = {"state": state, "reason": reason[:100], "message": message}
    if state == RunState.RUNNING and run.started_at is None:
        fields["started_at"] = now
    if state in RUN_FINAL:
        fields["finished_at"] = now
    else:
        fields["finished_at"] = None
    with transaction.atomic():
        if not PipelineRun.objects.filter(pk=run.pk, state=run.state).update(**fields):
            return False
        for name, value in fields.items():
            setattr(run, name, value)
        if state in RUN_FINAL:
            PipelineRun.objects.filter(pk=run.pk).update(notified_at=None)
            _enqueue("pipelines.tasks.notify_run", run.pk)
    return True


def step_update(step: RunStep, *, state: str | None = None, expect: str | None = None, **fields: Any) -> bool:
    """Write a step's state and fields, if its state is still ``expect`` (its current one by default)."""
    expect = step.state if expect is None else expect
    now = timezone.now()
    if state is not None:
        fields["state"] = state
        if state == StepState.RUNNING and step.started_at is None:
            fields.setdefault("started_at", now)
        if state in STEP_FINAL:
            fields.setdefault("finished_at", now)
    if not RunStep.objects.filter(pk=step.pk, state=expect).update(**fields):
        return False
    for name, value in fields.items():
        setattr(step, name, value)
    return True


# --- controls -----------------------------------------------------------------------


def run_stop(*, run: PipelineRun, user=None) -> PipelineRun:
    """Stop a run: its jobs are stopped and its unfinished steps end ``stopped`` at the engine's next tick."""
    if user is not None and not permissions.can(user, run, permissions.Action.CHANGE):
        raise PermissionDenied(_("Only the run's owner or a team admin stops it."))
    if run.state not in RUN_ACTIVE:
        raise PipelineActionRefused(_("The run has ended (%(state)s).") % {"state": run.get_state_display()})
    with transaction.atomic():
        PipelineRun.objects.filter(pk=run.pk).update(stop_requested=True)
        run.stop_requested = True
        wake_engine()
    if run.engine == Engine.ARGO and run.workflow:
        from pipelines import argo

        argo.stop(run)
        # Argo's shutdown leaves what its resource templates made (training jobs): they are stopped as jobs.
        stop_jobs(run, actor=user)
    return run


def stop_jobs(run: PipelineRun, actor=None) -> int:
    """Stop every active job of the run's steps; how many were asked to stop."""
    stopped = 0
    jobs = Job.objects.filter(
        pk__in=StepJob.objects.filter(step__run=run, job__isnull=False).values("job_id"), state__in=JOB_ACTIVE
    )
    for job in jobs:
        job_stop(
            job=job,
            actor=actor,
            reason="PipelineStopped",
            message=_("Its pipeline run %(run)s was stopped.") % {"run": run.public_id},
        )
        stopped += 1
    return stopped


def _descendants(spec: dict, name: str) -> set[str]:
    children: dict[str, set[str]] = {}
    for step in spec["steps"]:
        for parent in step.get("requires") or []:
            children.setdefault(parent, set()).add(step["name"])
    found, todo = set(), [name]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def run_retry_step(*, run: PipelineRun, step_name: str, user) -> RunStep:
    """Run a failed step again in the same run: it and the steps skipped or stopped after it wait again."""
    if not permissions.can(user, run, permissions.Action.CHANGE):
        raise PermissionDenied(_("Only the run's owner or a team admin retries its steps."))
    if run.engine != Engine.PORTAL:
        raise PipelineActionRefused(_("A step of an Argo run is retried by Argo's retry strategy."))
    step = RunStep.objects.filter(run=run, name=step_name).first()
    if step is None:
        raise ValidationError({"step": [_("No step %(step)r in this run.") % {"step": step_name}]})
    if step.state not in (StepState.FAILED, StepState.STOPPED):
        raise PipelineActionRefused(
            _("Only a failed or stopped step is retried; %(step)s is %(state)s.")
            % {"step": step.name, "state": step.get_state_display()}
        )
    if run.state in RUN_ACTIVE and not run.stop_requested and step.state == StepState.STOPPED:
        raise PipelineActionRefused(_("The run is still going."))
    later = _descendants(run.version.spec, step.name)
    with transaction.atomic():
        locked = PipelineRun.objects.select_for_update().get(pk=run.pk)
        if locked.state in RUN_ACTIVE and locked.stop_requested:
            raise PipelineActionRefused(_("The run is stopping."))
        if not step_update(
            step,
            state=StepState.WAITING,
            message=_("retried by %(user)s") % {"user": user.get_username()},
            finished_at=None,
            outputs={},
            items=None,
        ):
            raise PipelineActionRefused(_("The step changed meanwhile; look again."))
        # Its jobs so far stay on record; the next attempt numbers on from them.
        RunStep.objects.filter(run=run, name__in=later, state__in=[StepState.SKIPPED, StepState.STOPPED]).update(
            state=StepState.WAITING, finished_at=None, message=""
        )
        if locked.state != RunState.RUNNING:
            PipelineRun.objects.filter(pk=run.pk).update(stop_requested=False)
            locked.stop_requested = False
            run_transition(locked, RunState.RUNNING, reason="StepRetried", message=step.name, actor=user)
            run.state, run.finished_at = locked.state, locked.finished_at
        wake_engine()
    return step


def run_rerun_from(*, run: PipelineRun, step_name: str, user) -> PipelineRun:
    """A new run of the same version and params that reuses the outputs of every step that is not the chosen step
    or after it, and runs the chosen step and everything after it again."""
    if not permissions.can_use_team(user, run.team):
        raise PermissionDenied(_("Only members of the run's team may rerun it."))
    spec = run.version.spec
    names = [step["name"] for step in spec["steps"]]
    if step_name not in names:
        raise ValidationError({"step": [_("No step %(step)r in this run.") % {"step": step_name}]})
    again = {step_name} | _descendants(spec, step_name)
    earlier = {s.name: s for s in RunStep.objects.filter(run=run).exclude(name__in=again)}
    unusable = sorted(
        n for n, s in earlier.items() if s.state not in (StepState.SUCCESS, StepState.CACHED, StepState.SKIPPED)
    )
    if unusable:
        raise ValidationError(
            {
                "step": [
                    _("Steps before %(step)s did not succeed, so their outputs cannot be reused: %(names)s.")
                    % {"step": step_name, "names": ", ".join(unusable)}
                ]
            }
        )
    skipped = {n for n, s in earlier.items() if s.state == StepState.SKIPPED}
    reuse = {n: s for n, s in earlier.items() if n not in skipped}
    new = run_submit(
        user=user, pipeline=run.pipeline, version=run.version, params=run.params, rerun_of=run,
        rerun_from=step_name, reuse=reuse,
    )  # fmt: skip
    if skipped:
        RunStep.objects.filter(run=new, name__in=skipped).update(state=StepState.SKIPPED, finished_at=timezone.now())
    return new


def schedule_save(*, user, pipeline: Pipeline, data: dict, schedule: Schedule | None = None) -> Schedule:
    """Create or change a schedule (its owner, or the pipeline's owner or a team admin)."""
    from pipelines import schedule as schedules

    if not permissions.can_use_team(user, pipeline.team):
        raise PermissionDenied(_("Only members of the pipeline's team may schedule it."))
    if schedule is not None and not _may_change_schedule(user, schedule):
        raise PermissionDenied(_("Only the schedule's owner, the pipeline's owner or a team admin changes it."))
    values = schedules.clean(data, pipeline=pipeline, partial=schedule is not None)
    with transaction.atomic():
        resumed = schedule is not None and schedule.paused and values.get("paused") is False
        if schedule is None:
            schedule = Schedule(pipeline=pipeline, owner=user)
        for name, value in values.items():
            setattr(schedule, name, value)
        if resumed:
            # The times that passed while it was paused are not missed times: it goes on from now.
            schedule.last_time = timezone.now()
            schedule.next_time = schedules.next_after(schedule, schedule.last_time)
        elif {"cron", "timezone"} & set(values) or schedule.next_time is None:
            schedule.next_time = schedules.next_after(schedule, schedule.last_time or timezone.now())
        try:
            with transaction.atomic():
                schedule.save()
        except IntegrityError:
            raise ValidationError({"name": [_("The pipeline has a schedule of that name.")]}) from None
    return schedule


def _may_change_schedule(user, schedule: Schedule) -> bool:
    return schedule.owner_id == user.pk or permissions.can(user, schedule.pipeline, permissions.Action.CHANGE)


def schedule_delete(*, user, schedule: Schedule) -> None:
    """Delete a schedule (its owner, the pipeline's owner or a team admin); its runs stay, no longer its."""
    if not _may_change_schedule(user, schedule):
        raise PermissionDenied(_("Only the schedule's owner, the pipeline's owner or a team admin changes it."))
    Schedule.objects.filter(pk=schedule.pk).delete()


def schedule_backfill(*, user, schedule: Schedule, start: datetime, end: datetime) -> list[PipelineRun]:
    """A run for each of the schedule's times in [start, end] (at most schedules.MAX_BACKFILL), queued: the engine
    starts them as the schedule's concurrency allows. A time that already has its run is left as it is."""
    from pipelines import schedule as schedules

    if not permissions.can_use_team(user, schedule.pipeline.team):
        raise PermissionDenied(_("Only members of the pipeline's team may backfill it."))
    times = schedules.times_between(schedule, start, end, limit=schedules.MAX_BACKFILL + 1, inclusive=True)
    if len(times) > schedules.MAX_BACKFILL:
        raise ValidationError({"end": [_("At most %(n)d runs at once.") % {"n": schedules.MAX_BACKFILL}]})
    made = []
    for when in times:
        try:
            made.append(schedules.make_run(schedule, when, user=user))
        except IntegrityError:
            continue  # that time has its run
    return made


__all__ = [
    "PipelineActionRefused",
    "new_run_id",
    "pipeline_check",
    "pipeline_save",
    "resolve_params",
    "run_rerun_from",
    "run_retry_step",
    "run_stop",
    "run_submit",
    "run_transition",
    "schedule_backfill",
    "schedule_delete",
    "schedule_save",
    "step_update",
    "stop_jobs",
]
