"""Argo runs read back: each Workflow's ``.status.nodes`` moved onto the run's steps, their outputs and jobs.

One list call per cluster serves every run on it. A step is its ``main`` DAG task's node (``{workflow}.{step}``):
Pending/Running → running (retrying once an attempt failed and another is due), Succeeded → success, Failed/Error
→ failed (stopped when the Workflow was shut down), Skipped/Omitted → skipped; a step without a node when the
Workflow ended never ran (skipped, or stopped). Each attempt of a step's job is a ``Pod`` node of the step's job
template; once it runs, the job is recorded (``jobs.services.job_record_submitted``, state unknown: the cluster's
sync pass observes it by its id) with a ``StepJob`` row for its item and attempt.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from clusters.backends.base import BackendError
from clusters.backends.kubernetes.observe import parse_time
from jobs.models import Job
from jobs.services import job_record_submitted
from pipelines.argo_compile import ANNOTATION_PLAN, RETRY_SUFFIX, _marker
from pipelines.models import PipelineRun, RunState, RunStep, StepJob, StepState

log = logging.getLogger(__name__)

STOPPED_MESSAGE = "Stopped with strategy"  # what Argo writes on the nodes a shutdown ended
JOB_STARTED = ("Running", "Succeeded", "Failed")
OUTCOME = {"Succeeded": "success", "Failed": "failed", "Error": "failed"}


def _last_line(text: str) -> str:
    for line in reversed((text or "").splitlines()):
        if line.strip():
            return line.strip()
    return ""


def _node_parameters(node: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p.get("value", "") for p in ((node.get("outputs") or {}).get("parameters") or []) if "name" in p}


def _run_state(workflow: dict[str, Any], run: PipelineRun) -> str:
    phase = (workflow.get("status") or {}).get("phase") or "Pending"
    if phase in ("Pending", "Running", ""):
        return RunState.RUNNING
    if phase == "Succeeded":
        return RunState.SUCCESS
    if (workflow.get("spec") or {}).get("shutdown") or run.stop_requested:
        return RunState.STOPPED
    return RunState.FAILED


def sync_runs(runs: list[PipelineRun]) -> None:
    by_cluster: dict[int, list[PipelineRun]] = defaultdict(list)
    for run in runs:
        if run.cluster_id and run.workflow:
            by_cluster[run.cluster_id].append(run)
    if not by_cluster:
        return
    steps_by_run: dict[int, dict[str, RunStep]] = defaultdict(dict)
    for step in RunStep.objects.filter(run__in=[r.pk for rs in by_cluster.values() for r in rs]):
        steps_by_run[step.run_id][step.name] = step
    known: dict[tuple[int, int, int], StepJob] = {
        (sj.step_id, sj.item, sj.attempt): sj
        for sj in StepJob.objects.filter(step__in=[s.pk for steps in steps_by_run.values() for s in steps.values()])
    }
    from pipelines.argo import list_workflows

    for group in by_cluster.values():
        cluster = group[0].cluster
        try:
            workflows = list_workflows(cluster)
        except BackendError as exc:
            log.warning("Argo runs of cluster %s not read: %s", cluster.name, exc)
            continue
        for run in group:
            namespace = cluster.backend().namespace(run.team.slug)
            workflow = workflows.get((namespace, run.workflow))
            try:
                _sync_run(run, workflow, steps_by_run[run.pk], known)
            except Exception:  # one run's surprise must not stop the others
                log.exception("Argo run %s not synced", run.public_id)


def _sync_run(run: PipelineRun, workflow: dict | None, steps: dict[str, RunStep], known: dict) -> None:
    from pipelines.services import run_transition, step_update

    if workflow is None:
        run_transition(run, RunState.FAILED, reason="WorkflowMissing",
                       message=f"The Workflow {run.workflow} is no longer on the cluster.")  # fmt: skip
        return
    status = workflow.get("status") or {}
    nodes: dict[str, dict[str, Any]] = status.get("nodes") or {}
    by_name = {node.get("name"): node for node in nodes.values()}
    plan = json.loads(((workflow.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_PLAN) or "{}")
    state = _run_state(workflow, run)
    if status.get("phase") in ("Running", "Succeeded", "Failed", "Error") and run.state == RunState.QUEUED:
        run_transition(run, RunState.RUNNING, reason="WorkflowRunning")
    stopped = state == RunState.STOPPED
    ended = state != RunState.RUNNING
    spec_steps = {s["name"]: s for s in run.version.spec["steps"]}
    for name, step_plan in plan.items():
        step = steps.get(name)
        if step is None:
            continue
        jobs = _record_jobs(run, step, step_plan, nodes, known)
        top = by_name.get(f"{run.workflow}.{name}")
        new_state, message = _step_state(top, step_plan, nodes, stopped, ended)
        fields: dict[str, Any] = {}
        if top is not None:
            started = parse_time(top.get("startedAt"))
            if started and step.started_at is None:
                fields["started_at"] = started
            finished = parse_time(top.get("finishedAt"))
            if finished and new_state in (StepState.SUCCESS, StepState.FAILED, StepState.SKIPPED, StepState.STOPPED):
                fields["finished_at"] = finished
        if step_plan.get("items") is not None and step.items is None and new_state != StepState.WAITING:
            fields["items"] = step_plan["items"]
        if new_state in (StepState.SUCCESS, StepState.FAILED) and top is not None:
            outputs = _outputs(spec_steps.get(name, {}), step_plan, top, jobs, nodes)
            if outputs != step.outputs:
                fields["outputs"] = outputs
        if message and message != step.message:
            fields["message"] = message[:2000]
        if new_state != step.state or fields:
            if step.is_final and new_state != step.state:
                continue  # a final step stays as recorded
            step_update(step, state=new_state if new_state != step.state else None, **fields)
    if ended:
        reason = {RunState.SUCCESS: "WorkflowSucceeded", RunState.STOPPED: "WorkflowStopped"}.get(
            state, "WorkflowFailed"
        )
        if run.state == RunState.QUEUED:
            run_transition(run, RunState.RUNNING, reason="WorkflowRunning")
        run_transition(run, state, reason=reason, message=status.get("message") or "")


def _job_nodes(step_plan: dict, nodes: dict[str, dict]) -> list[tuple[dict, dict, int]]:
    """(the job's plan, its node, the attempt: 0 for the first) of every attempt Argo made of the step's jobs."""
    templates = {job["template"]: job for job in step_plan.get("jobs") or []}
    found = []
    for node in nodes.values():
        job = templates.get(node.get("templateName"))
        if job is None or node.get("type") != "Pod":
            continue
        match = RETRY_SUFFIX.search(node.get("name") or "") if step_plan.get("retry") else None
        found.append((job, node, int(match[1]) if match else 0))
    return sorted(found, key=lambda f: (f[0]["item"], f[2]))


def _job_data(job: dict, node: dict) -> dict:
    """The job's spec as compiled, each runtime input's stand-in replaced by the value Argo gave it."""
    text = json.dumps(job["data"])
    values = {p["name"]: p.get("value", "") for p in ((node.get("inputs") or {}).get("parameters") or [])}
    for name in job.get("inputs") or {}:
        text = text.replace(_marker(name), json.dumps(values.get(name, ""))[1:-1])
    return json.loads(text)


def _record_jobs(run: PipelineRun, step: RunStep, step_plan: dict, nodes: dict, known: dict) -> dict[int, str]:
    """Record the job of every attempt that started (once); item -> the job id of its latest attempt."""
    latest: dict[int, str] = {}
    for job, node, attempt in _job_nodes(step_plan, nodes):
        job_id = f"{job['stem']}{attempt}"
        latest[job["item"]] = job_id
        if node.get("phase") not in JOB_STARTED:
            continue
        outcome = OUTCOME.get(node.get("phase"), "")
        if STOPPED_MESSAGE in (node.get("message") or ""):
            outcome = "stopped"
        key = (step.pk, job["item"], attempt + 1)
        row = known.get(key)
        if row is not None:
            if row.outcome != outcome:
                StepJob.objects.filter(pk=row.pk).update(outcome=outcome)
                row.outcome = outcome
            continue
        try:
            recorded: Job | None = job_record_submitted(user=run.owner, data=_job_data(job, node), public_id=job_id)
        except ValidationError as exc:
            log.warning("run %s step %s: job %s not recorded: %s", run.public_id, step.name, job_id, exc)
            recorded = None
        try:
            with transaction.atomic():
                row = StepJob.objects.create(step=step, item=job["item"], attempt=attempt + 1, job=recorded,
                                             outcome=outcome)  # fmt: skip
        except IntegrityError:
            row = StepJob.objects.get(step=step, item=job["item"], attempt=attempt + 1)
        known[key] = row
    return latest


def _step_state(top: dict | None, step_plan: dict, nodes: dict, stopped: bool, ended: bool) -> tuple[str, str]:
    if top is None:
        if not ended:
            return StepState.WAITING, ""
        return (StepState.STOPPED, "") if stopped else (StepState.SKIPPED, "")
    phase, message = top.get("phase") or "Pending", top.get("message") or ""
    if phase in ("Skipped", "Omitted"):
        return StepState.SKIPPED, message
    if phase == "Succeeded":
        return StepState.SUCCESS, ""
    if phase in ("Failed", "Error"):
        if stopped or STOPPED_MESSAGE in message:
            return StepState.STOPPED, message
        return StepState.FAILED, message
    if step_plan.get("retry") and any(
        n.get("phase") in ("Failed", "Error") for _job, n, _attempt in _job_nodes(step_plan, nodes)
    ):
        return StepState.RETRYING, message
    if ended:
        return (StepState.STOPPED if stopped else StepState.FAILED), message
    return StepState.RUNNING, message


def _outputs(spec_step: dict, step_plan: dict, top: dict, jobs: dict[int, str], nodes: dict) -> dict:
    """The step's outputs as the models keep them: parameters (the built-ins too), artifacts, digests."""
    declared = spec_step.get("outputs") or {}
    names = list((declared.get("parameters") or {}).keys())
    artifacts = declared.get("artifacts") or {}
    values = _node_parameters(top)
    leaves: dict[tuple[int, int], dict] = {(job["item"], attempt): node
                                           for job, node, attempt in _job_nodes(step_plan, nodes)}  # fmt: skip

    def builtins(item: int) -> tuple[Any, str]:
        attempts = [a for (i, a) in leaves if i == item]
        node = leaves.get((item, max(attempts))) if attempts else None
        if node is None or step_plan.get("kind") != "container":
            return None, ""
        outputs = node.get("outputs") or {}
        code = outputs.get("exitCode")
        return (int(code) if str(code or "").lstrip("-").isdigit() else None), _last_line(outputs.get("result", ""))

    items = step_plan.get("items")
    if items is None:
        exit_code, stdout = builtins(0)
        job_id = jobs.get(0, "")
        parameters: dict[str, Any] = {"job_id": job_id, "exit_code": exit_code, "stdout": stdout}
        parameters.update({n: values.get(n) for n in names})
        return {
            "parameters": parameters,
            "artifacts": {a: f"{job_id}/{rel}" for a, rel in artifacts.items()} if job_id else {},
            "digests": {},
        }
    count = len(items)
    per_item = [builtins(i) for i in range(count)]
    parameters = {
        "job_id": [jobs.get(i, "") for i in range(count)],
        "exit_code": [p[0] for p in per_item],
        "stdout": [p[1] for p in per_item],
    }
    parameters.update({n: [values.get(f"{n}-{i}") for i in range(count)] for n in names})
    return {
        "parameters": parameters,
        "artifacts": {
            a: [f"{jobs[i]}/{rel}" if jobs.get(i) else None for i in range(count)] for a, rel in artifacts.items()
        },
        "digests": {},
    }
