"""The Kubernetes backend: one object per cluster, speaking the backend protocol over the official client.

A sync pass costs a constant number of API calls: one list per custom kind
installed on the cluster (label selector ``app.kubernetes.io/managed-by=easyai``)
and one pod list with the same selector, whatever the number of jobs, plus one
Event list per namespace the jobs live in (why a pod waits: the scheduler's and
the kubelet's words, kept by the portal after the cluster drops them). Lists are
parsed from raw JSON: the client's model deserialisation would cost more than
the request for thousands of pods.

It also serves models (``ServingBackend``): a KServe InferenceService per service, created or patched to the
description, and read back with one list call per cluster, whatever the number of services.

The debug toolbox (``DebugBackend``) works through the exec API in the task's pod: an SSH connection is the
toolbox's ``easyai-sshd`` given a socket by ``easyai-inetd`` (``open_ssh``), a hold is read from the wrapper's
``held`` file and released by its ``release`` file. A sync pass reads ``held`` only in the running pods of jobs
whose spec holds failed tasks and whose container is not ready (the probe on that file): jobs without a hold
cost no call more.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import urllib3
from django.conf import settings
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream as k8s_stream
from websocket import WebSocketException

from clusters.backends.base import (
    BackendError,
    BackendRejected,
    BackendUnavailable,
    Capacity,
    JobDescription,
    JobObservation,
    ObservedState,
    ServiceDescription,
    ServiceObservation,
    ShellSession,
    StreamSession,
    TeamDescription,
)
from clusters.backends.contract import toolbox
from clusters.backends.contract.quantity import parse_quantity
from clusters.backends.contract.storage import task_log_path
from clusters.backends.kubernetes import manifests as m
from clusters.backends.kubernetes import provisioning
from clusters.backends.kubernetes import usage as prometheus_usage
from clusters.backends.kubernetes.client import ConflictError, Connection, NotFoundError, gc_paused, new_api_client
from clusters.backends.kubernetes.manifests import toolbox as tools
from clusters.backends.kubernetes.observe import (
    FINAL,
    apply_holds,
    event_observation,
    held_now,
    job_observation,
    main_container_status,
    pod_task,
)
from clusters.backends.kubernetes.shell import KubernetesShellSession, KubernetesStreamSession, exit_status

if TYPE_CHECKING:
    from clusters.models import Cluster

log = logging.getLogger(__name__)

DISCOVERY_TTL = 600.0  # seconds a CRD list is trusted: operators are installed rarely
EVENTS_REMEMBERED = 100_000  # events reported already, so a pass reports only new ones (forgotten past this)
FOLLOW_READ_TIMEOUT = 3600.0  # a quiet training may print nothing for long; the stream is reopened then


def shell_command(tools_bin: str) -> list[str]:
    """The web shell: a login shell with the toolbox's static tools (``ping``, ``wget``, ``nc``, ``vi``...) on
    PATH after the image's own, where the pod has them. A login profile may set PATH again (Debian's and
    Alpine's do): bash gets the tools back at its first prompt; sh (an image without bash) reads the profiles
    here, before the tools are added, and goes on as an interactive shell."""
    script = f"""t={tools_bin}
tools() {{ if [ -d "$t" ]; then case ":$PATH:" in *":$t:"*) ;; *) PATH="${{PATH:+$PATH:}}$t" ;; esac; fi; export PATH; }}
tools
if command -v bash >/dev/null 2>&1; then
    [ -d "$t" ] && export PROMPT_COMMAND="case \\":\\$PATH:\\" in *\\":$t:\\"*) ;; *) PATH=\\"\\$PATH:$t\\" ;; esac${{PROMPT_COMMAND:+; $PROMPT_COMMAND}}"
    exec bash -l
fi
[ -r /etc/profile ] && . /etc/profile
[ -r "$HOME/.profile" ] && . "$HOME/.profile"
tools
exec sh -i"""
    return ["/bin/sh", "-c", script]


DEFAULT_SHELL = shell_command(f"{toolbox.POD_TOOLS_DIR}/bin")
HELD_READ_TIMEOUT = 10.0  # seconds an exec reading a pod's held file may take
DELETE_OPTIONS = {"propagation_policy": "Foreground"}
OPERATOR_HINT = {
    "kubeflow.org": "the Kubeflow training-operator",
    "batch.volcano.sh": "Volcano",
    "serving.kserve.io": "KServe",
}


class KubernetesBackend:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.conn = Connection(cluster)
        self._crds: tuple[float, dict[str, list[str]] | None] | None = None
        self._where: dict[str, tuple[m.ObjectKind, str]] = {}  # job id -> (kind, namespace)
        self._pods: dict[tuple[str, str], tuple[str, str, str]] = {}  # (job, task) -> (namespace, pod, container)
        self._logs_saved: set[str] = set()
        # (job id, event uid) -> (count, last seen) of the events reported already: a pass reports what changed.
        self._events_seen: dict[tuple[str, str], tuple[int, datetime | None]] = {}
        self._lock = threading.Lock()
        # Execs connect through an ApiClient of their own: kubernetes.stream swaps its transport while it
        # connects, so one connect at a time, and other threads' REST calls never go over a websocket.
        self._exec_client: k8s.ApiClient | None = None
        self._exec_lock = threading.Lock()

    # --- settings ----------------------------------------------------------------------

    @property
    def keep_finished(self) -> timedelta:
        return self.cluster.keep_finished

    def namespace(self, team: str) -> str:
        return m.namespace_name(self.cluster, team)

    # --- discovery -----------------------------------------------------------------------

    def installed_crds(self, refresh: bool = False) -> dict[str, list[str]] | None:
        """CRD name -> served versions; None when this cluster does not let us read CRDs."""
        with self._lock:
            cached = self._crds
        if cached is not None and not refresh and time.monotonic() - cached[0] < DISCOVERY_TTL:
            return cached[1]
        api = k8s.ApiextensionsV1Api(self.conn.api_client)
        try:
            data = self.conn.raw_json("list CRDs", api.list_custom_resource_definition, mark_refusal=False)
            crds: dict[str, list[str]] | None = {
                item["metadata"]["name"]: [v["name"] for v in item["spec"].get("versions", []) if v.get("served")]
                for item in data.get("items", [])
            }
        except (NotFoundError, BackendRejected, BackendUnavailable):
            # RBAC without CRD reads: every kind is tried, and a 404 answers for the missing ones.
            crds = None
        with self._lock:
            self._crds = (time.monotonic(), crds)
        return crds

    def _kinds_to_list(self) -> list[m.ObjectKind]:
        crds = self.installed_crds()
        kinds = list(dict.fromkeys(m.CUSTOM_KINDS.values()))
        if crds is None:
            return kinds
        return [k for k in kinds if k.version in crds.get(k.crd_name, [])]

    def kind_problem(self, kind: m.ObjectKind) -> str:
        """Why this cluster cannot take objects of the kind ("" when it can, or when we cannot tell)."""
        if kind is m.POD_KIND:
            return ""
        try:
            crds = self.installed_crds()
        except BackendError:
            return ""
        if crds is None:
            return ""
        served = crds.get(kind.crd_name)
        hint = OPERATOR_HINT.get(kind.group, "its operator")
        if served is None:
            return f"this cluster has no {kind.kind} ({kind.crd_name}): install {hint}"
        if kind.version not in served:
            return (
                f"this cluster serves {kind.crd_name} as {', '.join(served)} only; "
                f"EasyAI renders {kind.api_version} ({hint})"
            )
        return ""

    # --- the protocol: check, render, submit ------------------------------------------------

    def check(self, job: JobDescription) -> list[str]:
        problems: list[str] = []
        try:
            kind = m.object_kind(job.framework)
        except ValueError:
            return [f"unknown framework {job.framework!r}"]
        namespace = self.namespace(job.team)
        if len(namespace) > 63:
            problems.append(f"the namespace {namespace!r} is longer than 63 characters: shorten the prefix or slug")
        needs_storage = job.framework in m.POD_FRAMEWORKS or any(task.storage for task in job.tasks)
        if needs_storage and not (self.cluster.nfs_server and self.cluster.nfs_path):
            problems.append("this cluster has no NFS configured: jobs here cannot see their data and outputs")
        if any(task.gpu for task in job.tasks) and not self.cluster.gpu_resource_name:
            problems.append("this cluster names no GPU resource")
        problems += m.toolbox_problems(job)
        try:
            manifests = m.render(job, self.cluster)
        except ValueError as exc:
            return [*problems, str(exc)]
        if Path(settings.EASYAI_K8S_SCHEMAS).is_dir():
            from clusters.backends.kubernetes.schema_check import validate_manifest

            for manifest in manifests:
                problems += [f"{manifest['kind']} {p}" for p in validate_manifest(manifest)]
        if problem := self.kind_problem(kind):
            problems.append(problem)
        return problems

    def render(self, job: JobDescription) -> list[dict[str, Any]]:
        try:
            return m.render(job, self.cluster)
        except ValueError as exc:
            raise BackendRejected(str(exc)) from exc

    def submit(self, job: JobDescription) -> None:
        manifests = self.render(job)
        for manifest in manifests:
            # The job's own object first, then its endpoints' Services and Ingress (an ingress host only).
            kind = m.manifest_kind(manifest)
            namespace = manifest["metadata"]["namespace"]
            try:
                self._create(kind, namespace, manifest)
            except NotFoundError:
                self._namespace_or_kind_missing(kind, namespace, job.team)
                try:
                    self._create(kind, namespace, manifest)
                except ConflictError:
                    self._already_submitted(kind, namespace, manifest, job.job_id)
            except ConflictError:
                self._already_submitted(kind, namespace, manifest, job.job_id)
        self._where[job.job_id] = (m.object_kind(job.framework), manifests[0]["metadata"]["namespace"])

    @property
    def networking(self) -> k8s.NetworkingV1Api:
        return k8s.NetworkingV1Api(self.conn.api_client)

    def _create(self, kind: m.ObjectKind, namespace: str, manifest: dict[str, Any]) -> None:
        name = manifest["metadata"]["name"]
        if kind is m.POD_KIND:
            self.conn.call(f"create pod {namespace}/{name}", self.conn.core.create_namespaced_pod, namespace,
                           manifest, field_validation="Strict")  # fmt: skip
        elif kind is m.SERVICE_KIND:
            self.conn.call(f"create service {namespace}/{name}", self.conn.core.create_namespaced_service,
                           namespace, manifest, field_validation="Strict")  # fmt: skip
        elif kind is m.INGRESS_KIND:
            self.conn.call(f"create ingress {namespace}/{name}", self.networking.create_namespaced_ingress,
                           namespace, manifest, field_validation="Strict")  # fmt: skip
        else:
            self.conn.call(f"create {kind.kind} {namespace}/{name}", self.conn.custom.create_namespaced_custom_object,
                           kind.group, kind.version, namespace, kind.plural, manifest,
                           field_validation="Strict")  # fmt: skip

    def _get(self, kind: m.ObjectKind, namespace: str, name: str) -> dict[str, Any]:
        if kind is m.POD_KIND:
            return self.conn.raw_json(
                f"read pod {namespace}/{name}", self.conn.core.read_namespaced_pod, name, namespace
            )
        if kind is m.SERVICE_KIND:
            return self.conn.raw_json(
                f"read service {namespace}/{name}", self.conn.core.read_namespaced_service, name, namespace
            )
        if kind is m.INGRESS_KIND:
            return self.conn.raw_json(
                f"read ingress {namespace}/{name}", self.networking.read_namespaced_ingress, name, namespace
            )
        return self.conn.call(f"read {kind.kind} {namespace}/{name}", self.conn.custom.get_namespaced_custom_object,
                              kind.group, kind.version, namespace, kind.plural, name)  # fmt: skip

    def _already_submitted(self, kind: m.ObjectKind, namespace: str, manifest: dict[str, Any], job_id: str) -> None:
        """409 on create: ours from an earlier try (carry on), or someone else's object with our name."""
        name = manifest["metadata"]["name"]
        existing = self._get(kind, namespace, name)
        owner = ((existing.get("metadata") or {}).get("labels") or {}).get(m.LABEL_JOB_ID)
        if owner != job_id:
            raise BackendRejected(
                f"{kind.kind} {namespace}/{name} already exists and is not job {job_id}'s "
                f"(its {m.LABEL_JOB_ID} label is {owner!r})"
            )
        log.info("job %s was already submitted to %s", job_id, self.cluster.name)

    def _namespace_or_kind_missing(self, kind: m.ObjectKind, namespace: str, team: str) -> None:
        """A 404 on create: the team was never provisioned here (create its namespace), or the kind is not served."""
        try:
            self.conn.raw_json(f"read namespace {namespace}", self.conn.core.read_namespace, namespace)
        except NotFoundError:
            log.warning("namespace %s missing on %s: created for a submit; provision the team", namespace, self.cluster)
            self.conn.call(f"create namespace {namespace}", self.conn.core.create_namespace,
                           m.team_namespace(self.cluster, team))  # fmt: skip
            return
        raise BackendRejected(self.kind_problem(kind) or f"cluster {self.cluster.name} does not serve {kind.kind}")

    # --- observe ------------------------------------------------------------------------------

    def _list_pods(self, selector: str) -> list[dict[str, Any]]:
        data = self.conn.raw_json("list pods", self.conn.core.list_pod_for_all_namespaces, label_selector=selector)
        return data.get("items") or []

    def observe(self, job_ids: list[str]) -> dict[str, JobObservation]:
        if not job_ids:
            return {}
        # A pass builds millions of short-lived, acyclic objects (parsed lists): with the cyclic GC on, each
        # young collection would walk them all. Paused around the whole pass, they are freed by reference
        # counting when _observe returns, before the collector looks again.
        with gc_paused():
            return self._observe(job_ids)

    def _observe(self, job_ids: list[str]) -> dict[str, JobObservation]:
        wanted = set(job_ids)
        objects: dict[str, tuple[m.ObjectKind, dict[str, Any]]] = {}
        for kind in self._kinds_to_list():
            try:
                data = self.conn.raw_json(f"list {kind.plural}", self.conn.custom.list_cluster_custom_object,
                                          kind.group, kind.version, kind.plural, label_selector=m.SELECTOR)  # fmt: skip
            except NotFoundError:
                with self._lock:
                    self._crds = None  # uninstalled since we looked: look again next pass
                continue
            for item in data.get("items") or []:
                job_id = ((item.get("metadata") or {}).get("labels") or {}).get(m.LABEL_JOB_ID)
                if job_id in wanted:
                    objects[job_id] = (kind, item)
        pods_by_job: dict[str, list[dict[str, Any]]] = {}
        for pod in self._list_pods(m.SELECTOR):
            job_id = ((pod.get("metadata") or {}).get("labels") or {}).get(m.LABEL_JOB_ID)
            if job_id in wanted:
                pods_by_job.setdefault(job_id, []).append(pod)

        result: dict[str, JobObservation] = {}
        for job_id in job_ids:
            kind_obj = objects.get(job_id)
            pods = pods_by_job.get(job_id, [])
            observation = job_observation(job_id, kind_obj[1] if kind_obj else None, pods)
            hold = next((found for pod in pods if (found := tools.pod_hold(pod))), None)
            if hold is not None:
                apply_holds(observation, self._read_holds(pods), hold[1])
            if kind_obj is not None:
                self._where[job_id] = (kind_obj[0], kind_obj[1]["metadata"].get("namespace", ""))
            elif observation.state != ObservedState.MISSING:
                self._where[job_id] = (m.POD_KIND, pods[0]["metadata"].get("namespace", ""))
            if observation.state in FINAL:
                self._finish(job_id, observation, pods)
            result[job_id] = observation
        self._collect_events(objects, pods_by_job, result)
        return result

    def _collect_events(
        self,
        objects: dict[str, tuple[m.ObjectKind, dict[str, Any]]],
        pods_by_job: dict[str, list[dict[str, Any]]],
        result: dict[str, JobObservation],
    ) -> None:
        """The Events about the jobs' objects and pods, new since the last pass: one list per namespace they are in.

        Events carry no labels of ours: they are matched by the object they are about. A namespace whose events
        may not be read (RBAC) is skipped, leaving the cluster's health alone: the events are a nicety.
        """
        about: dict[tuple[str, str, str], tuple[str, str]] = {}  # (namespace, kind, name) -> (job id, task)
        for job_id, (kind, obj) in objects.items():
            meta = obj.get("metadata") or {}
            about[(meta.get("namespace", ""), kind.kind, meta.get("name", ""))] = (job_id, "")
        for job_id, pods in pods_by_job.items():
            for pod in pods:
                meta = pod.get("metadata") or {}
                role, index = pod_task(pod)
                about[(meta.get("namespace", ""), "Pod", meta.get("name", ""))] = (job_id, f"{role}-{index}")
        if len(self._events_seen) > EVENTS_REMEMBERED:
            self._events_seen.clear()  # reported again once: the sync pass keeps each event once anyway
        for namespace in sorted({namespace for namespace, _kind, _name in about if namespace}):
            try:
                data = self.conn.raw_json(f"list events {namespace}", self.conn.core.list_namespaced_event,
                                          namespace, mark_refusal=False)  # fmt: skip
            except BackendError as exc:
                log.info("events of %s on %s not read: %s", namespace, self.cluster.name, exc)
                continue
            for event in data.get("items") or []:
                involved = event.get("involvedObject") or {}
                found = about.get((namespace, involved.get("kind", ""), involved.get("name", "")))
                if found is None:
                    continue
                job_id, task = found
                seen = event_observation(event, task)
                key, mark = (job_id, seen.uid), (seen.count, seen.last_at)
                if not seen.uid or self._events_seen.get(key) == mark:
                    continue
                self._events_seen[key] = mark
                result[job_id].events.append(seen)

    def _read_holds(self, pods: list[dict[str, Any]]) -> dict[tuple[str, int], tuple[str, int, int]]:
        """(role, index) -> (mode, exit code, until) of a job's held tasks: the ``held`` file of each running pod
        whose container is not ready (its probe fails while the file is there), read by exec."""
        held: dict[tuple[str, int], tuple[str, int, int]] = {}
        for pod in pods:
            meta, status = pod.get("metadata") or {}, pod.get("status") or {}
            container = main_container_status(pod)
            if status.get("phase") != "Running" or meta.get("deletionTimestamp") or container.get("ready"):
                continue
            if "running" not in (container.get("state") or {}):
                continue
            namespace, name = meta.get("namespace", ""), meta.get("name", "")
            try:
                code, output = self._exec_output(namespace, name, container.get("name", ""),
                                                 [tools.BUSYBOX, "cat", tools.HELD_FILE])  # fmt: skip
            except BackendError as exc:
                log.info("the hold of %s/%s on %s not read: %s", namespace, name, self.cluster.name, exc)
                continue
            found = toolbox.parse_held(output.decode(errors="replace")) if code == 0 else None
            if found is not None:
                held[pod_task(pod)] = found
        return held

    def _finish(self, job_id: str, observation: JobObservation, pods: list[dict[str, Any]]) -> None:
        """A final job: keep its pods' logs, then remove its objects once kept long enough (and none is held:
        the cleanup after the hold copies the logs and removes them)."""
        if held_now(observation):
            return
        try:
            self._save_logs(job_id, pods)
            finished = observation.finished_at or datetime.now(UTC)
            if datetime.now(UTC) - finished >= self.keep_finished:
                self._delete_objects(job_id)
        except BackendError as exc:
            # The observation stands; the next pass tries the logs and the delete again.
            log.warning("finishing job %s on %s: %s", job_id, self.cluster.name, exc)

    # --- logs ----------------------------------------------------------------------------------

    def _log_path(self, job_id: str, task_name: str) -> Path:
        return task_log_path(Path(settings.EASYAI_STORAGE_ROOT), job_id, task_name)

    def _save_logs(self, job_id: str, pods: list[dict[str, Any]]) -> None:
        """Copy each pod's log into the task's log file: the portal keeps logs after the cluster forgets them."""
        if job_id in self._logs_saved:
            return
        for pod in pods:
            meta = pod.get("metadata") or {}
            containers = (pod.get("spec") or {}).get("containers") or [{}]
            role, index = pod_task(pod)
            try:
                response = self.conn.call(
                    f"read log {meta.get('namespace')}/{meta.get('name')}", self.conn.core.read_namespaced_pod_log,
                    meta.get("name"), meta.get("namespace"), container=containers[0].get("name"),
                    _preload_content=False,
                )  # fmt: skip
            except NotFoundError:
                continue  # the pod went first: what we copied before (if anything) stays
            data = response.data
            response.release_conn()
            path = self._log_path(job_id, f"{role}-{index}")
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written whole then renamed: a reader never sees half a copy.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        self._logs_saved.add(job_id)

    def _find_pod(self, job_id: str, task_name: str) -> tuple[str, str, str] | None:
        """(namespace, pod, container) of a task: one pod list by the job's label, then remembered."""
        key = (job_id, task_name)
        if key in self._pods:
            return self._pods[key]
        for pod in self._list_pods(f"{m.SELECTOR},{m.LABEL_JOB_ID}={job_id}"):
            role, index = pod_task(pod)
            meta = pod["metadata"]
            container = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name", "")
            self._pods[(job_id, f"{role}-{index}")] = (meta.get("namespace", ""), meta["name"], container)
        return self._pods.get(key)

    def read_log(self, job_id: str, task_name: str, offset: int = 0, limit: int | None = None) -> tuple[bytes, int]:
        data: bytes | None = None
        pod = self._find_pod(job_id, task_name) if job_id not in self._logs_saved else None
        if pod is not None:
            namespace, name, container = pod
            kwargs: dict[str, Any] = {"container": container, "_preload_content": False}
            if limit is not None:
                kwargs["limit_bytes"] = offset + limit
            try:
                response = self.conn.call(f"read log {namespace}/{name}", self.conn.core.read_namespaced_pod_log,
                                          name, namespace, **kwargs)  # fmt: skip
                data = response.data
                response.release_conn()
            except NotFoundError:
                self._pods.pop((job_id, task_name), None)
        if data is None:
            path = self._log_path(job_id, task_name)
            data = path.read_bytes() if path.exists() else b""
        chunk = data[offset:] if limit is None else data[offset : offset + limit]
        return chunk, offset + len(chunk)

    def follow_log(self, job_id: str, task_name: str, offset: int = 0) -> Iterator[bytes]:
        sent = 0  # bytes of the log seen so far, from its start
        pod = self._find_pod(job_id, task_name)
        while pod is not None:
            namespace, name, container = pod
            try:
                response = self.conn.call(
                    f"follow log {namespace}/{name}", self.conn.core.read_namespaced_pod_log, name, namespace,
                    container=container, follow=True, _preload_content=False,
                    _request_timeout=(min(self.conn.timeout, 10.0), FOLLOW_READ_TIMEOUT),
                )  # fmt: skip
            except NotFoundError:
                break
            seen = 0  # a reopened stream starts again from the first byte
            try:
                for chunk in response.stream(8192, decode_content=True):
                    start, seen = seen, seen + len(chunk)
                    skip = max(offset, sent) - start
                    if skip < len(chunk):
                        yield chunk[max(skip, 0) :]
                    sent = max(sent, seen)
                break  # the container ended: its log is whole
            except urllib3.exceptions.ReadTimeoutError:
                continue  # quiet for an hour: reopen and skip what was sent
            finally:
                # Closed, not returned to the pool: a stream left unread would poison the next request.
                response.close()
                response.release_conn()
        path = self._log_path(job_id, task_name)
        if path.exists():
            with path.open("rb") as persisted:
                persisted.seek(max(offset, sent))
                rest = persisted.read()
            if rest:
                yield rest

    # --- shell ------------------------------------------------------------------------------------

    def summary_place(self, job_id: str, task_name: str, stored: str) -> str:
        return m.summary_mount_path(job_id, task_name)

    def provision_team(self, team: TeamDescription) -> None:
        """The team's namespace, ResourceQuota and (with Volcano) queue on this cluster; see provisioning.py."""
        provisioning.provision_team(self.conn, team)

    def usage(self, job_ids: list[str]) -> list[prometheus_usage.TaskUsage]:
        """What the running tasks use, asked of the cluster's Prometheus (settings.prometheus_url; usage.py)."""
        return prometheus_usage.usage(self.cluster.settings, job_ids)

    def open_shell(self, job_id: str, task_name: str, command: list[str] | None = None) -> ShellSession:
        pod = self._find_pod(job_id, task_name)
        if pod is None:
            raise BackendError(f"task {task_name} of job {job_id} has no pod on {self.cluster.name}")
        namespace, name, container = pod
        ws = self._exec_connect(namespace, name, container, command or DEFAULT_SHELL, stdin=True, tty=True)
        return KubernetesShellSession(ws)

    # --- exec: the debug toolbox ------------------------------------------------------------------------

    def _exec_connect(
        self, namespace: str, name: str, container: str, command: list[str], *, stdin: bool, tty: bool
    ) -> Any:
        """An exec's websocket (kubernetes.stream's WSClient, binary), connected through the exec client."""
        with self._exec_lock:
            if self._exec_client is None:
                self._exec_client = new_api_client(self.cluster)
            api = k8s.CoreV1Api(self._exec_client)
            self.conn.calls += 1
            try:
                return k8s_stream(
                    api.connect_get_namespaced_pod_exec, name, namespace, container=container, command=command,
                    stdin=stdin, stdout=True, stderr=True, tty=tty, _preload_content=False, binary=True,
                    _request_timeout=self.conn.timeout,
                )  # fmt: skip
            except ApiException as exc:
                raise self.conn.translate(f"exec in {namespace}/{name}", exc) from exc

    def _exec_output(
        self, namespace: str, name: str, container: str, command: list[str], timeout: float = HELD_READ_TIMEOUT
    ) -> tuple[int | None, bytes]:
        """Run a short command in a pod: (its exit status, None when it did not end in time; its output)."""
        ws = self._exec_connect(namespace, name, container, command, stdin=False, tty=False)
        try:
            deadline = time.monotonic() + timeout
            output = b""
            while ws.is_open() and time.monotonic() < deadline:
                ws.update(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
                output += ws.read_stdout(timeout=0) or b""
            output += ws.read_stdout(timeout=0) or b""
            return exit_status(ws), output
        except (OSError, WebSocketException) as exc:
            raise BackendError(f"exec in {namespace}/{name}: {exc}") from exc
        finally:
            try:
                ws.close()
            except (OSError, WebSocketException):
                pass

    def _running_pod(self, job_id: str, task_name: str) -> dict[str, Any]:
        """The pod of a running task, with the toolbox in it (BackendError says why not)."""
        pod = self._find_pod(job_id, task_name)
        if pod is None:
            raise BackendError(f"task {task_name} of job {job_id} has no pod on {self.cluster.name}")
        namespace, name, _container = pod
        try:
            found = self.conn.raw_json(f"read pod {namespace}/{name}", self.conn.core.read_namespaced_pod, name,
                                       namespace)  # fmt: skip
        except NotFoundError:
            self._pods.pop((job_id, task_name), None)
            raise BackendError(f"task {task_name} of job {job_id} has no pod on {self.cluster.name}") from None
        phase = (found.get("status") or {}).get("phase")
        if phase != "Running":
            raise BackendError(f"task {task_name} of job {job_id} is not running (its pod is {phase or 'unknown'})")
        volumes = {volume.get("name") for volume in (found.get("spec") or {}).get("volumes") or []}
        if tools.TOOLS_VOLUME not in volumes:
            raise BackendError(
                f"task {task_name} of job {job_id} was started without the debug tools (before they were put "
                "into every pod): run the job again to connect to it"
            )
        return found

    def open_ssh(self, job_id: str, task_name: str, keys: list[str]) -> StreamSession:
        """One SSH connection: the toolbox's easyai-sshd in the task's main container, given a socket by
        easyai-inetd, over an exec without a terminal (stdin and stdout carry the connection's bytes)."""
        self._running_pod(job_id, task_name)
        namespace, name, container = self._pods[(job_id, task_name)]
        command = [
            tools.BUSYBOX, "env", f"{toolbox.TOOLS}={toolbox.POD_TOOLS_DIR}", f"{toolbox.SSH_KEYS}={chr(10).join(keys)}",
            f"{toolbox.POD_TOOLS_DIR}/easyai-inetd", *toolbox.sshd_argv(toolbox.POD_TOOLS_DIR),
        ]  # fmt: skip
        ws = self._exec_connect(namespace, name, container, command, stdin=True, tty=False)
        return KubernetesStreamSession(ws, what=f"ssh into {namespace}/{name}")

    def release_hold(self, job_id: str) -> None:
        """Make the ``release`` file in each running pod of the job that holds (one that does not is left alone:
        a later failure there is still held). Idempotent."""
        selector = f"{m.SELECTOR},{m.LABEL_JOB_ID}={job_id}"
        release = f"[ ! -e {tools.HELD_FILE} ] || {tools.BUSYBOX} touch {tools.RELEASE_FILE}"
        failures = []
        for pod in self._list_pods(selector):
            meta, status = pod.get("metadata") or {}, pod.get("status") or {}
            if tools.pod_hold(pod) is None or status.get("phase") != "Running" or meta.get("deletionTimestamp"):
                continue
            container = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name", "")
            namespace, name = meta.get("namespace", ""), meta.get("name", "")
            try:
                code, _output = self._exec_output(namespace, name, container, [tools.BUSYBOX, "sh", "-c", release])
            except NotFoundError:
                continue  # gone meanwhile: nothing to release
            if code != 0:
                failures.append(f"{name}: the release did not end well (status {code})")
        if failures:
            raise BackendError(f"releasing the hold of {job_id}: {'; '.join(failures)}")

    # --- stop and delete ---------------------------------------------------------------------------

    def _locate(self, job_id: str) -> list[tuple[m.ObjectKind, str, str]]:
        """(kind, namespace, name) of the job's objects: remembered from observe, else looked up by label."""
        if job_id in self._where:
            kind, namespace = self._where[job_id]
            return [(kind, namespace, job_id)]
        selector = f"{m.SELECTOR},{m.LABEL_JOB_ID}={job_id}"
        found: list[tuple[m.ObjectKind, str, str]] = []
        for kind in self._kinds_to_list():
            try:
                data = self.conn.raw_json(f"find {kind.plural}", self.conn.custom.list_cluster_custom_object,
                                          kind.group, kind.version, kind.plural, label_selector=selector)  # fmt: skip
            except NotFoundError:
                continue
            found += [(kind, i["metadata"].get("namespace", ""), i["metadata"]["name"]) for i in data.get("items", [])]
        for pod in self._list_pods(selector):
            if pod["metadata"]["name"] == job_id:
                found.append((m.POD_KIND, pod["metadata"].get("namespace", ""), job_id))
        return found

    def _endpoint_objects(self, job_id: str) -> list[tuple[m.ObjectKind, str, str]]:
        """(kind, namespace, name) of the job's Services and Ingress: one list call each, by the job's label."""
        if not m.ingress_address(self.cluster):
            return []
        selector = f"{m.SELECTOR},{m.LABEL_JOB_ID}={job_id}"
        found: list[tuple[m.ObjectKind, str, str]] = []
        for kind, list_all in (
            (m.SERVICE_KIND, self.conn.core.list_service_for_all_namespaces),
            (m.INGRESS_KIND, self.networking.list_ingress_for_all_namespaces),
        ):
            data = self.conn.raw_json(f"find {kind.plural}", list_all, label_selector=selector)
            found += [(kind, i["metadata"].get("namespace", ""), i["metadata"]["name"]) for i in data.get("items", [])]
        return found

    def _delete_objects(self, job_id: str) -> None:
        options = k8s.V1DeleteOptions(**DELETE_OPTIONS)
        for kind, namespace, name in self._locate(job_id) + self._endpoint_objects(job_id):
            try:
                if kind is m.POD_KIND:
                    self.conn.raw_json(f"delete pod {namespace}/{name}", self.conn.core.delete_namespaced_pod, name,
                                   namespace, body=options)  # fmt: skip
                elif kind is m.SERVICE_KIND:
                    self.conn.raw_json(f"delete service {namespace}/{name}", self.conn.core.delete_namespaced_service,
                                       name, namespace, body=options)  # fmt: skip
                elif kind is m.INGRESS_KIND:
                    self.conn.raw_json(f"delete ingress {namespace}/{name}", self.networking.delete_namespaced_ingress,
                                       name, namespace, body=options)  # fmt: skip
                else:
                    self.conn.raw_json(f"delete {kind.kind} {namespace}/{name}",
                                   self.conn.custom.delete_namespaced_custom_object, kind.group, kind.version,
                                   namespace, kind.plural, name, body=options)  # fmt: skip
            except NotFoundError:
                pass  # gone already: what we wanted
        self._where.pop(job_id, None)
        for key in [k for k in self._pods if k[0] == job_id]:
            self._pods.pop(key, None)

    def stop(self, job_id: str) -> None:
        """Delete the job's objects (foreground: pods first), after copying what its pods logged."""
        try:
            self._save_logs(job_id, self._list_pods(f"{m.SELECTOR},{m.LABEL_JOB_ID}={job_id}"))
        except BackendUnavailable:
            raise
        except BackendError as exc:
            log.warning("stopping job %s: its logs could not be copied: %s", job_id, exc)
        self._delete_objects(job_id)

    def delete(self, job_id: str) -> None:
        self._save_logs(job_id, self._list_pods(f"{m.SELECTOR},{m.LABEL_JOB_ID}={job_id}"))
        self._delete_objects(job_id)

    # --- serving: KServe InferenceServices ------------------------------------------------------------------

    def render_service(self, service: ServiceDescription) -> dict[str, Any]:
        """The InferenceService, refused (BackendRejected) when KServe or the API server would refuse it."""
        try:
            manifest = m.inference_service(service, self.cluster)
        except ValueError as exc:
            raise BackendRejected(f"InferenceService {service.team}/{service.name}: {exc}") from exc
        if Path(settings.EASYAI_K8S_SCHEMAS).is_dir():
            from clusters.backends.kubernetes.schema_check import validate_manifest

            if problems := validate_manifest(manifest):
                where = f"{manifest['metadata']['namespace']}/{service.name}"
                raise BackendRejected(f"InferenceService {where}: {'; '.join(problems)}")
        return manifest

    def apply_service(self, service: ServiceDescription) -> None:
        """Create the InferenceService; one already there (409) is patched to the description."""
        manifest = self.render_service(service)
        kind, namespace = m.INFERENCE_SERVICE_KIND, manifest["metadata"]["namespace"]
        try:
            self._create(kind, namespace, manifest)
            return
        except NotFoundError:
            self._namespace_or_kind_missing(kind, namespace, service.team)
            try:
                self._create(kind, namespace, manifest)
                return
            except ConflictError:
                pass
        except ConflictError:
            pass
        self._update_service(service, manifest)

    def _update_service(self, service: ServiceDescription, manifest: dict[str, Any]) -> None:
        """Patch an existing InferenceService (ours) to the manifest: its spec exactly, our labels and annotation."""
        kind, meta = m.INFERENCE_SERVICE_KIND, manifest["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        existing = self._get(kind, namespace, name)
        have = existing.get("metadata") or {}
        labels = have.get("labels") or {}
        if labels.get(m.LABEL_MANAGED_BY) != m.MANAGED_BY or labels.get(m.LABEL_TEAM) != service.team:
            raise BackendRejected(
                f"InferenceService {namespace}/{name} already exists and is not team {service.team}'s "
                f"(its {m.LABEL_TEAM} label is {labels.get(m.LABEL_TEAM)!r})"
            )
        patch: dict[str, Any] = {}
        for section in ("labels", "annotations"):
            current = have.get(section) or {}
            if changed := {k: v for k, v in meta[section].items() if current.get(k) != v}:
                patch.setdefault("metadata", {})[section] = changed
        if spec := m.spec_patch(existing.get("spec") or {}, manifest["spec"]):
            patch["spec"] = spec
        if not patch:
            return  # a repeated apply: already as described
        self.conn.call(f"patch InferenceService {namespace}/{name}", self.conn.custom.patch_namespaced_custom_object,
                       kind.group, kind.version, namespace, kind.plural, name, patch,
                       field_validation="Strict")  # fmt: skip

    def delete_service(self, team: str, name: str) -> None:
        kind, namespace = m.INFERENCE_SERVICE_KIND, self.namespace(team)
        try:
            self.conn.raw_json(f"delete InferenceService {namespace}/{name}",
                               self.conn.custom.delete_namespaced_custom_object, kind.group, kind.version, namespace,
                               kind.plural, name, body=k8s.V1DeleteOptions(**DELETE_OPTIONS))  # fmt: skip
        except NotFoundError:
            pass  # gone already (or KServe is not installed): what we wanted

    def observe_services(self) -> dict[tuple[str, str], ServiceObservation]:
        """Every InferenceService the portal made here, from one list call; none when KServe is not installed."""
        kind = m.INFERENCE_SERVICE_KIND
        try:
            data = self.conn.raw_json(f"list {kind.plural}", self.conn.custom.list_cluster_custom_object,
                                      kind.group, kind.version, kind.plural, label_selector=m.SELECTOR)  # fmt: skip
        except NotFoundError:
            return {}
        found: dict[tuple[str, str], ServiceObservation] = {}
        for item in data.get("items") or []:
            if (observation := m.service_observation(item)) is not None:
                found[(observation.team, observation.name)] = observation
        return found

    # --- capacity ----------------------------------------------------------------------------------------

    def capacity(self) -> Capacity:
        """Allocatable on ready, schedulable nodes, less what running and pending pods request. Best effort."""
        gpu_name = self.cluster.gpu_resource_name
        nodes = self.conn.raw_json("list nodes", self.conn.core.list_node).get("items") or []
        pods = self.conn.raw_json(
            "list pods", self.conn.core.list_pod_for_all_namespaces,
            field_selector="status.phase!=Succeeded,status.phase!=Failed",
        ).get("items") or []  # fmt: skip
        total = {"cpu": Fraction(0), "memory": Fraction(0), gpu_name: Fraction(0)}
        usable: set[str] = set()
        for node in nodes:
            conditions = {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []}
            if (node.get("spec") or {}).get("unschedulable") or conditions.get("Ready") != "True":
                continue
            usable.add(node["metadata"]["name"])
            allocatable = (node.get("status") or {}).get("allocatable") or {}
            for resource in total:
                if resource in allocatable:
                    total[resource] += parse_quantity(allocatable[resource], resource)
        used = dict.fromkeys(total, Fraction(0))
        for pod in pods:
            if (pod.get("spec") or {}).get("nodeName") not in usable:
                continue  # unscheduled pods hold nothing yet
            for container in (pod.get("spec") or {}).get("containers") or []:
                requests = (container.get("resources") or {}).get("requests") or {}
                for resource in used:
                    if resource in requests:
                        used[resource] += parse_quantity(requests[resource], resource)
        return Capacity(
            cpu_milli=int(total["cpu"] * 1000),
            memory_bytes=int(total["memory"]),
            gpu=int(total[gpu_name]),
            free_cpu_milli=max(0, int((total["cpu"] - used["cpu"]) * 1000)),
            free_memory_bytes=max(0, int(total["memory"] - used["memory"])),
            free_gpu=max(0, int(total[gpu_name] - used[gpu_name])),
        )
