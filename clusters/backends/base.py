"""The backend protocol: what the jobs app asks of a cluster, in plain data.

A backend never imports the jobs app. It receives a fully resolved
``JobDescription`` and returns ``JobObservation``s; only the state machine in
``jobs/state.py`` turns observations into states.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from clusters.backends.contract import storage
from clusters.backends.contract.storage import Place

# --- what a backend is given ---------------------------------------------------


@dataclass
class TaskDescription:
    role: str  # master, worker, ps, chief, evaluator, launcher, or a batch role name
    index: int  # 0-based within the role
    replicas: int  # how many tasks the role has
    name: str  # "{role}-{index}", unique in the job
    image: str
    command: list[str]  # argv; a shell command arrives as ["/bin/sh", "-c", "..."]
    working_dir: str
    env: dict[str, str]  # user env merged with the storage variables (local paths locally, container paths on k8s)
    cpu_milli: int  # limit, in millicores
    memory_bytes: int  # limit, in bytes
    gpu: int
    storage: dict[str, str] = field(default_factory=dict)  # variable -> real path (local) or NFS sub-path (k8s)
    ports: dict[str, int] = field(default_factory=dict)  # named web endpoints the task serves (name -> container port)
    # Resolved by the jobs app from the storage layout (clusters.backends.contract.storage), so that a backend
    # never works them out of ids or paths: where the portal keeps the task's log (under its storage root), and
    # every place the task sees, a previous job's model_dir included. Empty in a description recorded before
    # they were carried (a local job's record from an earlier version).
    log_path: str = ""
    places: list[Place] = field(default_factory=list)
    # The debug toolbox (clusters.backends.contract.toolbox): the role's background services ({"name",
    # "command", "port", "health"}; each port is also in ``ports`` under the service's name), and the hold
    # of a task whose command failed (the spec's ``debug``: "keep_failed" or "pause_on_failure", seconds).
    services: list[dict[str, Any]] = field(default_factory=list)
    hold_mode: str = ""
    hold_seconds: int = 0

    def places_seen(self, job: JobDescription) -> list[Place]:
        """The places this task sees; a description without them gets the layout's (no previous job's model_dir)."""
        return self.places or storage.places(job.job_id, self.name, job.owner)


@dataclass
class JobDescription:
    job_id: str  # the public id, e.g. "j-3k9x2m4q"; backends derive every name from it
    name: str
    team: str  # team slug
    owner: str  # username
    framework: str  # pytorch, tensorflow, mpi, xgboost, paddle, batch, notebook, tensorboard
    priority: str  # low, normal, high
    tasks: list[TaskDescription]
    gang: bool = True
    oversell: float = 1.0  # request = limit / oversell for cpu and memory
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    queue: str = ""  # scheduler queue; default the team's
    volumes: list[dict[str, Any]] = field(default_factory=list)  # admin-defined volumes, resolved
    created_at: datetime | None = None  # for first-come-first-served ordering
    spec: dict[str, Any] = field(default_factory=dict)  # the whole validated spec, for reference

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat() if self.created_at else None
        return data


@dataclass
class TeamQuota:
    """What a team may use at once on one cluster: millicores, bytes, GPUs."""

    cpu_milli: int
    memory_bytes: int
    gpu: int


@dataclass
class TeamDescription:
    """A team as a backend provisions it: its slug (the namespace on Kubernetes) and its quota here."""

    slug: str
    quota: TeamQuota | None = None  # None: no limit on this cluster


# Model formats a served model may have (KServe's ``predictor.model.modelFormat.name``, ``custom`` aside).
MODEL_FORMATS = ("pytorch", "torchscript", "onnx", "sklearn", "xgboost", "tensorflow", "huggingface", "custom")


@dataclass
class ServiceDescription:
    """An inference service as a cluster serves it (a KServe InferenceService on Kubernetes).

    The local backend serves no ``ServiceDescription``: there each revision is a single-task job running the
    model server, and the portal's proxy splits the traffic. On Kubernetes KServe keeps the revisions: the
    spec names the newest version (``storage_uri``); with ``canary_percent`` set, that newest revision takes
    that share and the last rolled-out one the rest (Serverless mode); without it the newest takes all.
    """

    team: str  # team slug: the namespace is derived from it
    name: str  # DNS-1123 label, the InferenceService's name
    model_format: str  # one of MODEL_FORMATS
    storage_uri: str  # where the version's files are: "pvc://{claim}/{path}" or "s3://{bucket}/{prefix}"
    cpu_milli: int
    memory_bytes: int
    gpu: int = 0
    min_replicas: int = 1
    max_replicas: int = 1
    canary_percent: int | None = None  # 0-100, or None: no canary
    deployment_mode: str = "Serverless"  # or "RawDeployment" (no canary there: KServe splits only in Serverless)
    image: str = ""  # the predictor's container image, for the custom format (it serves /mnt/models itself)
    service_account: str = ""  # carries the S3 credentials' secret for s3:// storage (KServe's convention)
    runtime_version: str = ""  # modelFormat.version, when the version records one
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class TrafficObservation:
    revision: str  # KServe's revision name
    percent: int
    latest: bool = False  # the newest created revision


@dataclass
class ServiceObservation:
    """One InferenceService as the cluster reports it."""

    team: str
    name: str
    ready: bool
    url: str = ""  # status.url: the external URL (Serverless) or the cluster-local one
    address: str = ""  # status.address.url: where the portal's proxy reaches the predictor
    reason: str = ""
    message: str = ""  # why it is not ready (a failed revision says so here)
    latest_ready_revision: str = ""
    latest_created_revision: str = ""
    previous_rolledout_revision: str = ""
    traffic: list[TrafficObservation] = field(default_factory=list)
    grpc_address: str = ""  # where the V2 gRPC protocol answers, when KServe exposes it


# --- what a backend reports ------------------------------------------------------


class ObservedState:
    """Backend-level states; the state machine maps them onto job states."""

    PENDING = "pending"  # created on the backend, waiting for placement or starting
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"  # ended by the backend itself (e.g. preempted)
    MISSING = "missing"  # the backend has no object for this job

    ALL = (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED, MISSING)


@dataclass
class TaskObservation:
    role: str
    index: int
    state: str  # an ObservedState value
    node: str = ""  # host or node name
    pod_name: str = ""  # pod name, or "pid 1234" locally
    address: str = ""  # pod IP or 127.0.0.1
    gpu_ids: list[str] = field(default_factory=list)
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # Named web endpoints (the spec's ``ports``) where the portal reaches them now: name -> "host:port".
    # Locally a free host port chosen at placement; on Kubernetes the pod IP and the container port.
    endpoints: dict[str, str] = field(default_factory=dict)
    # A task whose command failed and that is held for debugging (clusters.backends.contract.toolbox):
    # how ("keep_failed" or "pause_on_failure") and until when; its exit_code is the command's.
    held: str = ""
    held_until: datetime | None = None


# Why a task cannot start, as a backend reports it in a task's reason: it cannot be placed (the scheduler's
# message says why, e.g. "0/12 nodes are available: 4 Insufficient nvidia.com/gpu"), or its image cannot be
# pulled or its container made. A pending job's waiting line shows these.
WAITING_REASONS = frozenset({
    "waiting", "Unschedulable", "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
    "CreateContainerConfigError", "CreateContainerError",
})  # fmt: skip


@dataclass
class EventObservation:
    """One cluster event about a job's objects (a Kubernetes Event on its pods or its training job)."""

    uid: str  # stable while the cluster keeps the event; a repeat of it raises count, not a new uid
    type: str  # Normal or Warning
    reason: str
    message: str
    count: int = 1
    first_at: datetime | None = None
    last_at: datetime | None = None
    object: str = ""  # "Pod/j-ab12cd34-worker-0", "PyTorchJob/j-ab12cd34"
    task: str = ""  # the task's name ("worker-0") when the event is about one task's pod


@dataclass
class JobObservation:
    job_id: str
    state: str  # an ObservedState value
    reason: str = ""
    message: str = ""
    tasks: list[TaskObservation] = field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # Cluster events about the job's objects seen this pass that the backend had not reported before (a
    # backend without events reports none); the sync pass keeps them.
    events: list[EventObservation] = field(default_factory=list)


@dataclass
class Capacity:
    cpu_milli: int
    memory_bytes: int
    gpu: int
    free_cpu_milli: int
    free_memory_bytes: int
    free_gpu: int


class ShellSession(Protocol):
    """An interactive terminal in a running task (a PTY locally, the exec API on Kubernetes)."""

    def read(self, timeout: float = 0.1) -> bytes | None:
        """Terminal output; b"" when nothing came within the timeout; None once the shell has ended."""

    def write(self, data: bytes) -> None:
        """Keystrokes, as bytes (Ctrl-C is b"\\x03")."""

    def resize(self, rows: int, cols: int) -> None: ...

    def close(self) -> None:
        """End the shell and everything it started."""

    @property
    def exit_code(self) -> int | None:
        """The shell's exit status once ended, when the backend knows it (None otherwise)."""


class StreamSession(Protocol):
    """A byte stream to a program in a running task (an SSH connection's server end): no terminal, no echo."""

    def read(self, timeout: float = 0.1) -> bytes | None:
        """Bytes from the program; b"" when nothing came within the timeout; None once it has ended."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None:
        """End the program and everything it started."""

    @property
    def exit_code(self) -> int | None: ...


# --- errors ------------------------------------------------------------------------


class BackendError(Exception):
    """A backend call failed in a way worth retrying (5xx, timeout, connection refused)."""


class BackendUnavailable(BackendError):  # noqa: N818 - named for what the cluster says
    """The cluster refuses us (401/403, bad credentials): mark it unhealthy; jobs stay queued."""


class BackendRejected(Exception):  # noqa: N818 - named for what the cluster says
    """The backend refuses this job for good (422, an MPI-less host): the job fails with this message."""


# --- the protocol ----------------------------------------------------------------------


@runtime_checkable
class Backend(Protocol):
    def check(self, job: JobDescription) -> list[str]:
        """Problems that make this job impossible on this cluster (empty when it can run)."""

    def render(self, job: JobDescription) -> list[dict[str, Any]]:
        """What submit would create, for dry runs (manifests on Kubernetes, process plans locally)."""

    def submit(self, job: JobDescription) -> None:
        """Create the job. Idempotent: submitting the same job id twice creates it once."""

    def observe(self, job_ids: list[str]) -> dict[str, JobObservation]:
        """One pass over the cluster: an observation for every id asked (MISSING when gone)."""

    def stop(self, job_id: str) -> None:
        """Stop every task of the job. Idempotent; a job already gone is not an error."""

    def delete(self, job_id: str) -> None:
        """Remove what the backend keeps for the job (objects, process records), after logs are saved."""

    def capacity(self) -> Capacity:
        """Total and free resources."""

    def read_log(self, job_id: str, task_name: str, offset: int = 0, limit: int | None = None) -> tuple[bytes, int]:
        """Bytes of a task's log from a byte offset, and the next offset."""

    def follow_log(self, job_id: str, task_name: str, offset: int = 0) -> Iterator[bytes]:
        """Yield chunks of the task's log from an offset as they are written, until the task ends.

        A silent task yields an empty chunk about once a second, so a reader can notice its client left.
        """

    def open_shell(self, job_id: str, task_name: str, command: list[str] | None = None) -> ShellSession:
        """A login shell (or the command) in a running task, in its working directory and environment."""

    def summary_place(self, job_id: str, task_name: str, stored: str) -> str:
        """Where a TensorBoard task on this cluster reads another job's task's summary_dir, ``stored`` being
        that place under the portal's storage root (the same path locally, a read-only mount in a pod)."""

    def provision_team(self, team: TeamDescription) -> None:
        """Bring the team's place on this cluster up to date (namespace, quota, queue on Kubernetes; nothing locally).

        Idempotent: called again after every change of the team or its quota, and by redelivered tasks.
        """


@runtime_checkable
class DebugBackend(Protocol):
    """What a backend does for the debug toolbox (optional: a backend without it offers no SSH and no holds)."""

    def open_ssh(self, job_id: str, task_name: str, keys: list[str]) -> StreamSession:
        """One SSH connection into a running (or held) task, as its user, accepting only these public keys: the
        toolbox's ``easyai-sshd`` with a socket for its standard input and output. BackendError says why not."""

    def release_hold(self, job_id: str) -> None:
        """End the holds of the job's held tasks (they end with their commands' status). Idempotent."""


@runtime_checkable
class ServingBackend(Protocol):
    """What a cluster that serves InferenceServices itself (Kubernetes with KServe) does besides jobs."""

    def render_service(self, service: ServiceDescription) -> dict[str, Any]:
        """The InferenceService manifest, validated strictly against the vendored KServe schema."""

    def apply_service(self, service: ServiceDescription) -> None:
        """Create the service, or patch it to the description. Idempotent."""

    def delete_service(self, team: str, name: str) -> None:
        """Delete it; one already gone is not an error."""

    def observe_services(self) -> dict[tuple[str, str], ServiceObservation]:
        """Every service the portal made on this cluster, by (team, name): one list call, whatever their number."""


# --- what tasks use -----------------------------------------------------------------


@dataclass
class TaskUsage:
    """What one running task uses, as a backend measures it at ``at``.

    CPU comes as one of two figures, by what the backend can measure. A backend that reads counters (the
    local one: the CPU seconds of the task's whole process tree since it started, as cAdvisor's
    ``container_cpu_usage_seconds_total``) gives ``cpu_seconds_total``; a rate needs two readings, and the
    sampler (``monitoring/sampler.py``) keeps the previous one and divides. A backend that asks something which
    already averages (Prometheus's ``rate()`` on Kubernetes) gives ``cpu_cores``. Memory is what the task holds
    now: resident bytes locally, the working set on Kubernetes. GPU figures are None where the task has no GPU
    or they cannot be measured.
    """

    job_id: str
    task: str  # the task's name ("worker-0"); "" when the backend cannot tell (a single-task job's pod)
    at: datetime
    memory_bytes: int
    cpu_seconds_total: float | None = None  # a counter: CPU seconds since the task started
    cpu_cores: float | None = None  # a rate: cores used, averaged by the backend
    gpu_util: float | None = None  # 0-100, the mean over the task's GPUs
    gpu_memory_bytes: int | None = None  # used, summed over the task's GPUs
    # Labels the task's usage carries in Prometheus, as a pod of it would: namespace, pod, container.
    labels: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class UsageBackend(Protocol):
    """A backend that can tell what its running tasks use (optional: a backend without it is not sampled)."""

    def usage(self, job_ids: list[str]) -> list[TaskUsage]:
        """What the running tasks of these jobs use now, one reading per task it could measure (the others
        are left out). One pass over the cluster, whatever the number of jobs; a failure raises BackendError."""
