"""Pipeline runs on Argo Workflows, for a Kubernetes cluster whose settings say ``pipeline_engine: argo``.

The portal's engine (``engine.py``) calls three functions:

- ``start(run)``: compile the run to a Workflow (``argo_compile``: every step a real EasyAI job, rendered by the
  Kubernetes backend), check it strictly (``validate_workflow``), create it in the team's namespace and record its
  name on the run. A ValidationError names what cannot compile (nothing was created); a BackendError is worth a
  later try (a repeated create finds the run's own Workflow and carries on).
- ``sync(runs)``: one list call per cluster (label ``easyai.io/pipeline-run``) for all the given runs; each
  Workflow's nodes move the run's steps, record their outputs and each job as its node starts
  (``argo_sync``).
- ``stop(run, terminate=False)``: ``spec.shutdown: Stop`` (``Terminate`` when asked) on the Workflow.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError

from clusters.backends.base import BackendRejected
from clusters.backends.kubernetes.client import ConflictError, NotFoundError
from pipelines.argo_compile import (
    ARGO_GROUP,
    ARGO_PLURAL,
    ARGO_VERSION,
    LABEL_RUN,
    RUN_SELECTOR,
    WORKFLOW_KIND,
    Compiled,
    compile_run,
    validate_workflow,
)
from pipelines.models import PipelineRun

log = logging.getLogger(__name__)

__all__ = ["compile_run", "start", "stop", "sync", "validate_workflow"]


def _create(backend, namespace: str, doc: dict) -> None:
    conn = backend.conn
    name = doc["metadata"]["name"]
    conn.call(f"create Workflow {namespace}/{name}", conn.custom.create_namespaced_custom_object, ARGO_GROUP,
              ARGO_VERSION, namespace, ARGO_PLURAL, doc, field_validation="Strict")  # fmt: skip


def start(run: PipelineRun) -> Compiled:
    """Compile, check and create the run's Workflow; record its name on the run."""
    compiled = compile_run(run)
    doc = compiled.workflow
    if problems := validate_workflow(doc):
        raise ValidationError({"workflow": problems})
    backend = run.cluster.backend()
    namespace, name = doc["metadata"]["namespace"], doc["metadata"]["name"]
    try:
        try:
            _create(backend, namespace, doc)
        except NotFoundError:
            # The team's namespace is missing (created, as a job's submit does), or Argo is not installed.
            backend._namespace_or_kind_missing(WORKFLOW_KIND, namespace, run.team.slug)
            _create(backend, namespace, doc)
    except ConflictError:
        conn = backend.conn
        existing = conn.call(f"read Workflow {namespace}/{name}", conn.custom.get_namespaced_custom_object,
                             ARGO_GROUP, ARGO_VERSION, namespace, ARGO_PLURAL, name)  # fmt: skip
        if ((existing.get("metadata") or {}).get("labels") or {}).get(LABEL_RUN) != run.public_id:
            raise BackendRejected(f"Workflow {namespace}/{name} already exists and is not run {run.public_id}'s")
        log.info("run %s: its Workflow was created by an earlier try", run.public_id)
    PipelineRun.objects.filter(pk=run.pk).update(workflow=name)
    run.workflow = name
    return compiled


def stop(run: PipelineRun, *, terminate: bool = False) -> None:
    """Ask Argo to stop the run's Workflow (``Stop``: no new step, exit handlers run; ``Terminate``: none)."""
    if not run.workflow:
        return
    backend = run.cluster.backend()
    conn = backend.conn
    namespace = backend.namespace(run.team.slug)
    body = {"spec": {"shutdown": "Terminate" if terminate else "Stop"}}
    try:
        conn.call(f"stop Workflow {namespace}/{run.workflow}", conn.custom.patch_namespaced_custom_object,
                  ARGO_GROUP, ARGO_VERSION, namespace, ARGO_PLURAL, run.workflow, body)  # fmt: skip
    except NotFoundError:
        pass  # gone already: nothing runs


def list_workflows(cluster) -> dict[tuple[str, str], dict]:
    """Every Workflow of a pipeline run on the cluster, by (namespace, name): one list call."""
    conn = cluster.backend().conn
    data = conn.raw_json("list Workflows", conn.custom.list_cluster_custom_object, ARGO_GROUP, ARGO_VERSION,
                         ARGO_PLURAL, label_selector=RUN_SELECTOR)  # fmt: skip
    return {
        ((item.get("metadata") or {}).get("namespace", ""), (item.get("metadata") or {}).get("name", "")): item
        for item in data.get("items") or []
    }


def sync(runs: list[PipelineRun]) -> None:
    """Read the Workflows of Argo runs (one list per cluster) and move their steps, jobs and states."""
    from pipelines.argo_sync import sync_runs

    sync_runs(runs)
