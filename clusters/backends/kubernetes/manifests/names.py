"""Names, labels and kinds of what a job becomes on Kubernetes: label keys, the object kinds and where they
live in the API, namespaces and queues, the names of pods. Pure: no API calls, no database."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from clusters.backends.base import JobDescription, TaskDescription

MANAGED_BY = "easyai"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_JOB_ID = "easyai.io/job-id"
LABEL_TEAM = "easyai.io/team"
LABEL_OWNER = "easyai.io/owner"
LABEL_ROLE = "easyai.io/role"
LABEL_INDEX = "easyai.io/task-index"  # only on plain pods; the operators write their own index labels
ANNOTATION_OWNER = "easyai.io/owner"
ANNOTATION_JOB_NAME = "easyai.io/job-name"
SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"

# Written on each pod by the operators; read back for the task's role and index.
TO_REPLICA_TYPE = "training.kubeflow.org/replica-type"  # lowercase replica type
TO_REPLICA_INDEX = "training.kubeflow.org/replica-index"
VC_TASK_SPEC = "volcano.sh/task-spec"  # annotation (and label on newer Volcano)
VC_TASK_INDEX = "volcano.sh/task-index"
VC_QUEUE_ANNOTATION = "scheduling.volcano.sh/queue-name"

NFS_VOLUME = "easyai-nfs"
# A TensorBoard's pod mounts the summary_dirs it shows (storage.TENSORBOARD_SOURCES) read-only under here.
SUMMARIES_ROOT = "/summaries"
ENDPOINTS_PREFIX = "/endpoints"
# Long-lived websockets (kernels, terminals) and uploads of any size through ingress-nginx; other controllers
# ignore these annotations.
INGRESS_ANNOTATIONS = {
    "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
    "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
    "nginx.ingress.kubernetes.io/proxy-body-size": "0",
}
PRIORITY_CLASSES = {"low": "easyai-low", "normal": "easyai-normal", "high": "easyai-high"}
PRIORITY_VALUES = {"easyai-low": 1000, "easyai-normal": 10000, "easyai-high": 100000}

# Set per pod by training-operator / Volcano / our local backend's contract: never copied from a task.
PER_POD_VARIABLES = frozenset(
    {
        "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TF_CONFIG", "CLUSTER_SPEC",
        "PET_NODE_RANK", "PET_NNODES", "PET_NPROC_PER_NODE", "PET_MASTER_ADDR", "PET_MASTER_PORT",
        "OMPI_MCA_orte_default_hostfile", "OMPI_MCA_plm_rsh_agent", "VC_TASK_INDEX",
        "PADDLE_TRAINER_ID", "PADDLE_TRAINERS", "PADDLE_TRAINER_ENDPOINTS", "PADDLE_CURRENT_ENDPOINT",
        "POD_IP_DUMMY", "EASYAI_TASK_NAME", "EASYAI_TASK_INDEX",
    }
)  # fmt: skip
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
IPV4 = re.compile(r"^[0-9.]+$")


@dataclass(frozen=True)
class TrainingKind:
    kind: str
    plural: str
    replica_field: str
    container: str  # the operator's default container name: it finds the main container by it
    replica_types: dict[str, str]  # our role -> the operator's replica type


TRAINING: dict[str, TrainingKind] = {
    "pytorch": TrainingKind("PyTorchJob", "pytorchjobs", "pytorchReplicaSpecs", "pytorch",
                            {"master": "Master", "worker": "Worker"}),
    "tensorflow": TrainingKind("TFJob", "tfjobs", "tfReplicaSpecs", "tensorflow",
                               {"chief": "Chief", "master": "Master", "ps": "PS", "worker": "Worker",
                                "evaluator": "Evaluator"}),
    "mpi": TrainingKind("MPIJob", "mpijobs", "mpiReplicaSpecs", "mpi", {"launcher": "Launcher", "worker": "Worker"}),
    "xgboost": TrainingKind("XGBoostJob", "xgboostjobs", "xgbReplicaSpecs", "xgboost",
                            {"master": "Master", "worker": "Worker"}),
    "paddle": TrainingKind("PaddleJob", "paddlejobs", "paddleReplicaSpecs", "paddle",
                           {"master": "Master", "worker": "Worker"}),
}  # fmt: skip
TRAINING_GROUP, TRAINING_VERSION = "kubeflow.org", "v1"
VOLCANO_GROUP, VOLCANO_VERSION, VOLCANO_PLURAL = "batch.volcano.sh", "v1alpha1", "jobs"
QUEUE_GROUP, QUEUE_VERSION, QUEUE_PLURAL = "scheduling.volcano.sh", "v1beta1", "queues"
VOLCANO_FRAMEWORKS = ("batch",)
POD_FRAMEWORKS = ("notebook", "tensorboard", "app")


@dataclass(frozen=True)
class ObjectKind:
    """Where objects of one kind live in the API: what a list/create/delete call needs."""

    group: str  # "" for core
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"


CUSTOM_KINDS: dict[str, ObjectKind] = {
    **{fw: ObjectKind(TRAINING_GROUP, TRAINING_VERSION, t.plural, t.kind) for fw, t in TRAINING.items()},
    "batch": ObjectKind(VOLCANO_GROUP, VOLCANO_VERSION, VOLCANO_PLURAL, "Job"),
}
POD_KIND = ObjectKind("", "v1", "pods", "Pod")
SERVICE_KIND = ObjectKind("", "v1", "services", "Service")
INGRESS_KIND = ObjectKind("networking.k8s.io", "v1", "ingresses", "Ingress")
# The kinds that carry a job's web endpoints through an ingress: created with the job, deleted with it.
ENDPOINT_KINDS = (SERVICE_KIND, INGRESS_KIND)


class ClusterSettings(Protocol):
    """What rendering reads from a cluster (the Cluster model has these fields)."""

    namespace_prefix: str
    nfs_server: str
    nfs_path: str
    gpu_resource_name: str
    scheduler: str
    image_pull_secrets: Any
    ingress_host: str


def object_kind(framework: str) -> ObjectKind:
    """The kind a framework is rendered as."""
    if framework in CUSTOM_KINDS:
        return CUSTOM_KINDS[framework]
    if framework in POD_FRAMEWORKS:
        return POD_KIND
    raise ValueError(f"unknown framework {framework!r}")


def manifest_kind(manifest: dict[str, Any]) -> ObjectKind:
    """Where a rendered manifest is created: its apiVersion and kind, among the kinds we render."""
    for kind in (*CUSTOM_KINDS.values(), POD_KIND, *ENDPOINT_KINDS):
        if (kind.api_version, kind.kind) == (manifest.get("apiVersion"), manifest.get("kind")):
            return kind
    raise ValueError(f"no kind {manifest.get('apiVersion')}/{manifest.get('kind')} is rendered by EasyAI")


def namespace_name(cluster: ClusterSettings, team: str) -> str:
    return f"{cluster.namespace_prefix or ''}{team}"


def queue_name(cluster: ClusterSettings, job: JobDescription) -> str:
    return job.queue or namespace_name(cluster, job.team)


def uses_volcano(cluster: ClusterSettings) -> bool:
    return cluster.scheduler == "volcano"


def label_value(value: str) -> str:
    """A string made into a valid label value (usernames may hold '@' or '+'); the annotation keeps the original."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", value)[:63].strip("_.-")
    return cleaned if LABEL_VALUE.match(cleaned) else ""


def job_labels(job: JobDescription) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_JOB_ID: job.job_id,
        LABEL_TEAM: job.team,
        LABEL_OWNER: label_value(job.owner),
    }


def job_annotations(job: JobDescription) -> dict[str, str]:
    return {ANNOTATION_OWNER: job.owner, ANNOTATION_JOB_NAME: job.name}


def roles(job: JobDescription) -> dict[str, list[TaskDescription]]:
    """Tasks by role, in the order roles first appear, each role's tasks by index."""
    grouped: dict[str, list[TaskDescription]] = {}
    for task in job.tasks:
        grouped.setdefault(task.role, []).append(task)
    return {role: sorted(tasks, key=lambda t: t.index) for role, tasks in grouped.items()}


def pod_name(job: JobDescription | str, role: str, index: int, framework: str = "") -> str:
    """The pod a task runs in: the operators name it "{job}-{replica type, lowercase}-{index}"."""
    job_id = job if isinstance(job, str) else job.job_id
    if (framework or (job.framework if not isinstance(job, str) else "")) in POD_FRAMEWORKS:
        return job_id
    return f"{job_id}-{role}-{index}"
