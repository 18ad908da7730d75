"""JobDescription -> Kubernetes manifests. Pure functions: no API calls, no database.

What a framework becomes:

- pytorch, tensorflow, mpi, xgboost, paddle: a training-operator ``kubeflow.org/v1``
  job (PyTorchJob, TFJob, MPIJob, XGBoostJob, PaddleJob), one replica spec per role;
- batch: a Volcano ``batch.volcano.sh/v1alpha1`` Job, one Volcano task per role;
- notebook, tensorboard: a plain ``v1`` Pod. They are single-task, long-lived and
  need no operator, so they also run on clusters without Volcano or the
  training-operator; on a Volcano cluster the pod is still scheduled by Volcano,
  in the team's queue (the queue-name annotation), with the job's priority class.
  A TensorBoard's pod also mounts, read-only, the summary_dir of every task it
  shows (``EASYAI_TENSORBOARD_SOURCES``) under ``/summaries/{job}/{task}``.

When the cluster has an ingress host, a job whose tasks serve named ports also
gets a ClusterIP ``v1`` Service per task (selecting that task's pod) and one
``networking.k8s.io/v1`` Ingress routing ``/endpoints/{job}/{task}/{name}`` on
that host to it: the portal's proxy then goes through the ingress instead of
to the pod's IP.

Every object is named after the job id (already a DNS-1035 label), so the same
job always renders the same names and a repeated submit is recognised.

Kubernetes has one pod template per role, so per-task differences inside a role
cannot be written into it: a role's environment is its first task's, less the
variables the operators set per pod (RANK, TF_CONFIG...). The one per-task
storage place, summary_dir, is mounted with ``subPathExpr`` built from the
role and index the operator writes on each pod (read through the downward API).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any, Protocol

from clusters.backends.base import JobDescription, TaskDescription
from clusters.backends.contract import storage

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
POD_FRAMEWORKS = ("notebook", "tensorboard")


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


# --- pod templates -------------------------------------------------------------------------


def _quantity_cpu(milli: float) -> str:
    milli = max(1, math.ceil(milli))
    return f"{milli // 1000}" if milli % 1000 == 0 else f"{milli}m"


def resources(cluster: ClusterSettings, job: JobDescription, task: TaskDescription) -> dict[str, Any]:
    """Limits as asked; requests = limits / oversell for cpu and memory; GPUs only as limits (requests equal)."""
    oversell = job.oversell if job.oversell and job.oversell > 0 else 1.0
    limits: dict[str, Any] = {}
    requests: dict[str, Any] = {}
    if task.cpu_milli:
        limits["cpu"] = _quantity_cpu(task.cpu_milli)
        requests["cpu"] = _quantity_cpu(task.cpu_milli / oversell)
    if task.memory_bytes:
        limits["memory"] = str(int(task.memory_bytes))
        requests["memory"] = str(max(1, int(task.memory_bytes / oversell)))
    if task.gpu:
        # Extended resources cannot be overcommitted: the API server wants requests == limits.
        limits[cluster.gpu_resource_name] = str(task.gpu)
        requests[cluster.gpu_resource_name] = str(task.gpu)
    return {"limits": limits, "requests": requests}


def _task_identity_env(source: str) -> list[dict[str, Any]]:
    """EASYAI_TASK_ROLE / EASYAI_TASK_INDEX from what the operator writes on each pod (for subPathExpr)."""
    if source == "training":
        role_ref, index_ref = f"metadata.labels['{TO_REPLICA_TYPE}']", f"metadata.labels['{TO_REPLICA_INDEX}']"
    elif source == "volcano":
        role_ref, index_ref = f"metadata.annotations['{VC_TASK_SPEC}']", f"metadata.annotations['{VC_TASK_INDEX}']"
    else:
        role_ref, index_ref = f"metadata.labels['{LABEL_ROLE}']", f"metadata.labels['{LABEL_INDEX}']"
    return [
        {"name": "EASYAI_TASK_ROLE", "valueFrom": {"fieldRef": {"fieldPath": role_ref}}},
        {"name": "EASYAI_TASK_INDEX", "valueFrom": {"fieldRef": {"fieldPath": index_ref}}},
    ]


def _env(job: JobDescription, task: TaskDescription, source: str, container_paths: dict[str, str]) -> list[dict]:
    env = [{"name": "EASYAI_JOB_ID", "value": job.job_id}, *_task_identity_env(source)]
    # Where each named endpoint listens, as the local backend gives it: here the container port itself.
    env += [{"name": _port_variable(port["name"]), "value": str(port["containerPort"])} for port in _ports(task)]
    seen = {item["name"] for item in env}
    for name, value in {**task.env, **container_paths}.items():
        if name in PER_POD_VARIABLES or name in seen or not ENV_NAME.match(name):
            continue
        seen.add(name)
        env.append({"name": name, "value": str(value)})
    return env


def _nfs_mounts(cluster: ClusterSettings, job: JobDescription, task: TaskDescription, source: str) -> list[dict]:
    """One mount per storage place, a sub-path of the cluster's NFS export (nfs_subpath's layout)."""
    mounts = []
    for place in task.places_seen(job):
        mount: dict[str, Any] = {"name": NFS_VOLUME, "mountPath": place.container_path}
        if place.variable == "summary_dir" and source != "pod":
            # Per task, in a role-wide template: built from the pod's own role and index.
            mount["subPathExpr"] = f"{job.job_id}/$(EASYAI_TASK_ROLE)-$(EASYAI_TASK_INDEX)/summary_dir"
        else:
            mount["subPath"] = place.relative
        if place.read_only:
            mount["readOnly"] = True
        mounts.append(mount)
    return mounts


def tensorboard_sources(task: TaskDescription) -> list[tuple[str, str]]:
    """(job id, task name) of each summary_dir a TensorBoard task shows, from its EASYAI_TENSORBOARD_SOURCES."""
    sources = []
    for item in filter(None, (part.strip() for part in task.env.get(storage.TENSORBOARD_SOURCES, "").split(","))):
        match = storage.TENSORBOARD_SOURCE.match(item)
        if match is None:
            raise ValueError(
                f"{storage.TENSORBOARD_SOURCES}: {item!r} is not a job id and task name (j-xxxxxxxx/role-0)"
            )
        sources.append((match.group(1), match.group(2)))
    return sources


def summary_mount_path(job_id: str, task_name: str) -> str:
    """Where a TensorBoard's pod sees the summary_dir of another job's task."""
    return f"{SUMMARIES_ROOT}/{job_id}/{task_name}"


def _summary_mounts(job: JobDescription, task: TaskDescription) -> list[dict]:
    if job.framework != "tensorboard":
        return []
    return [
        {
            "name": NFS_VOLUME,
            "mountPath": summary_mount_path(job_id, task_name),
            "subPath": f"{job_id}/{task_name}/summary_dir",
            "readOnly": True,
        }
        for job_id, task_name in tensorboard_sources(task)
    ]


def _extra_volumes(job: JobDescription) -> tuple[list[dict], list[dict]]:
    """Admin-defined volumes: {name, mountPath|mount_path, readOnly|read_only, subPath?, <volume source>}."""
    volumes, mounts = [], []
    for spec in job.volumes:
        mount_keys = {"mountPath", "mount_path", "readOnly", "read_only", "subPath", "sub_path"}
        volumes.append({k: v for k, v in spec.items() if k not in mount_keys})
        mount: dict[str, Any] = {"name": spec["name"], "mountPath": spec.get("mountPath") or spec.get("mount_path")}
        if spec.get("subPath") or spec.get("sub_path"):
            mount["subPath"] = spec.get("subPath") or spec.get("sub_path")
        if spec.get("readOnly") or spec.get("read_only"):
            mount["readOnly"] = True
        mounts.append(mount)
    return volumes, mounts


def _port_variable(name: str) -> str:
    return "EASYAI_PORT_" + name.upper().replace("-", "_")


def _ports(task: TaskDescription) -> list[dict[str, Any]]:
    ports = []
    for name, number in task.ports.items():
        port_name = name.lower().replace("_", "-")[:15]
        if not PORT_NAME.match(port_name) or not re.search(r"[a-z]", port_name):
            port_name = f"p{number}"[:15]
        ports.append({"name": port_name, "containerPort": int(number), "protocol": "TCP"})
    return ports


def pull_secrets(cluster: ClusterSettings) -> list[dict[str, str]]:
    secrets = cluster.image_pull_secrets or []
    if isinstance(secrets, str):
        secrets = [s.strip() for s in secrets.split(",") if s.strip()]
    return [{"name": s["name"] if isinstance(s, dict) else str(s)} for s in secrets]


def pod_spec(
    cluster: ClusterSettings, job: JobDescription, task: TaskDescription, container: str, source: str
) -> dict[str, Any]:
    """The pod of one role (its first task stands for the role)."""
    nfs = bool(cluster.nfs_server and cluster.nfs_path)
    places = task.places_seen(job) if nfs else []
    container_paths = {p.variable: p.container_path for p in places if p.variable}
    main: dict[str, Any] = {
        "name": container,
        "image": task.image,
        "env": _env(job, task, source, container_paths),
        "resources": resources(cluster, job, task),
    }
    if task.command:
        main["command"] = list(task.command)
    if task.working_dir:
        main["workingDir"] = task.working_dir
    if task.ports:
        main["ports"] = _ports(task)
    volumes, mounts = _extra_volumes(job)
    if nfs:
        volumes.insert(0, {"name": NFS_VOLUME, "nfs": {"server": cluster.nfs_server, "path": cluster.nfs_path}})
        mounts = _nfs_mounts(cluster, job, task, source) + _summary_mounts(job, task) + mounts
    if mounts:
        main["volumeMounts"] = mounts
    spec: dict[str, Any] = {"containers": [main]}
    if volumes:
        spec["volumes"] = volumes
    if job.node_selector:
        spec["nodeSelector"] = dict(job.node_selector)
    if job.tolerations:
        spec["tolerations"] = [dict(t) for t in job.tolerations]
    if pull_secrets(cluster):
        spec["imagePullSecrets"] = pull_secrets(cluster)
    if uses_volcano(cluster):
        spec["schedulerName"] = "volcano"
        spec["priorityClassName"] = PRIORITY_CLASSES.get(job.priority, PRIORITY_CLASSES["normal"])
    return spec


def _template(job: JobDescription, role: str, spec: dict[str, Any], extra_labels: dict | None = None) -> dict:
    return {
        "metadata": {
            "labels": {**job_labels(job), LABEL_ROLE: role, **(extra_labels or {})},
            "annotations": job_annotations(job),
        },
        "spec": spec,
    }


def _metadata(cluster: ClusterSettings, job: JobDescription) -> dict[str, Any]:
    return {
        "name": job.job_id,
        "namespace": namespace_name(cluster, job.team),
        "labels": job_labels(job),
        "annotations": job_annotations(job),
    }


# --- the kinds --------------------------------------------------------------------------------


def training_job(cluster: ClusterSettings, job: JobDescription) -> dict[str, Any]:
    kind = TRAINING[job.framework]
    replica_specs: dict[str, Any] = {}
    for role, tasks in roles(job).items():
        if role not in kind.replica_types:
            raise ValueError(f"{job.framework} has no role {role!r} (one of {', '.join(kind.replica_types)})")
        spec = pod_spec(cluster, job, tasks[0], kind.container, "training")
        replica_specs[kind.replica_types[role]] = {
            "replicas": len(tasks),
            # Failures are final: EasyAI records them and the user re-runs; the operator never restarts.
            "restartPolicy": "Never",
            "template": _template(job, role, spec),
        }
    run_policy: dict[str, Any] = {"cleanPodPolicy": "None", "backoffLimit": 0}
    if uses_volcano(cluster):
        scheduling: dict[str, Any] = {
            "queue": queue_name(cluster, job),
            "priorityClass": PRIORITY_CLASSES.get(job.priority, PRIORITY_CLASSES["normal"]),
        }
        if job.gang:
            scheduling["minAvailable"] = len(job.tasks)
        run_policy["schedulingPolicy"] = scheduling
    return {
        "apiVersion": f"{TRAINING_GROUP}/{TRAINING_VERSION}",
        "kind": kind.kind,
        "metadata": _metadata(cluster, job),
        "spec": {"runPolicy": run_policy, kind.replica_field: replica_specs},
    }


def volcano_job(cluster: ClusterSettings, job: JobDescription) -> dict[str, Any]:
    tasks = []
    for role, role_tasks in roles(job).items():
        spec = pod_spec(cluster, job, role_tasks[0], role, "volcano")
        spec["restartPolicy"] = "Never"
        tasks.append({"name": role, "replicas": len(role_tasks), "template": _template(job, role, spec)})
    spec: dict[str, Any] = {
        "minAvailable": len(job.tasks) if job.gang else 1,
        "tasks": tasks,
        # svc: stable hostnames per task ({job}-{task}-{index}.{job}); env: VC_TASK_INDEX in each pod.
        "plugins": {"svc": [], "env": []},
        # An evicted (preempted) pod restarts the whole gang; any failed pod ends the job as failed.
        "policies": [
            {"event": "PodEvicted", "action": "RestartJob"},
            {"event": "PodFailed", "action": "TerminateJob"},
        ],
        "maxRetry": 3,
    }
    if uses_volcano(cluster):
        spec["schedulerName"] = "volcano"
        spec["queue"] = queue_name(cluster, job)
        spec["priorityClassName"] = PRIORITY_CLASSES.get(job.priority, PRIORITY_CLASSES["normal"])
    return {
        "apiVersion": f"{VOLCANO_GROUP}/{VOLCANO_VERSION}",
        "kind": "Job",
        "metadata": _metadata(cluster, job),
        "spec": spec,
    }


def single_pod(cluster: ClusterSettings, job: JobDescription) -> dict[str, Any]:
    if len(job.tasks) != 1:
        raise ValueError(f"a {job.framework} has exactly one task, not {len(job.tasks)}")
    task = job.tasks[0]
    spec = pod_spec(cluster, job, task, job.framework, "pod")
    spec["restartPolicy"] = "Never"
    if job.framework == "notebook" and "jupyter" in task.ports:
        # Jupyter reads JUPYTER_TOKEN when no token is set on its command line: one only the portal can make.
        from clusters.crypto import endpoint_token

        spec["containers"][0].setdefault("env", []).append(
            {"name": "JUPYTER_TOKEN", "value": endpoint_token(job.job_id)}
        )
    metadata = _metadata(cluster, job)
    metadata["labels"] = {**metadata["labels"], LABEL_ROLE: task.role, LABEL_INDEX: str(task.index)}
    if uses_volcano(cluster):
        metadata["annotations"] = {**metadata["annotations"], VC_QUEUE_ANNOTATION: queue_name(cluster, job)}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def render(job: JobDescription, cluster: ClusterSettings) -> list[dict[str, Any]]:
    """Everything submit creates for the job, in creation order: its object, then its endpoints' objects."""
    if job.framework in TRAINING:
        main = training_job(cluster, job)
    elif job.framework in VOLCANO_FRAMEWORKS:
        main = volcano_job(cluster, job)
    elif job.framework in POD_FRAMEWORKS:
        main = single_pod(cluster, job)
    else:
        raise ValueError(f"unknown framework {job.framework!r}")
    return [main, *endpoint_objects(cluster, job)]


# --- web endpoints through an ingress ---------------------------------------------------------


def ingress_address(cluster: ClusterSettings) -> str:
    """The cluster's ingress as the portal connects to it ("host" or "host:port"); "" when it has none."""
    return (getattr(cluster, "ingress_host", "") or "").strip()


def ingress_rule_host(cluster: ClusterSettings) -> str:
    """The host an Ingress rule names: the ingress address without its port, a DNS name."""
    address = ingress_address(cluster)
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
    if port and not port.isdigit():
        raise ValueError(f"the cluster's ingress host {address!r} is not a host name with an optional :port")
    host = host.lower()
    if len(host) > 253 or not DNS_SUBDOMAIN.match(host) or IPV4.match(host):
        raise ValueError(
            f"the cluster's ingress host {address!r} must be a DNS name (an Ingress rule cannot name an IP address)"
        )
    return host


def endpoint_path(job_id: str, task_name: str, name: str) -> str:
    """The portal's path of a task's named endpoint, without its trailing slash (the Ingress path)."""
    return f"{ENDPOINTS_PREFIX}/{job_id}/{task_name}/{name}"


def service_name(job_id: str, task_name: str) -> str:
    """The Service of one task's endpoints: "{job}-{task}-ep", a hash of the task name when that is too long.

    Not "{job}-{task}": training-operator names its own per-replica Service so, and MASTER_ADDR and
    TF_CONFIG resolve through it.
    """
    name = f"{job_id}-{task_name}-ep"
    if len(name) <= 63:
        return name
    return f"{job_id}-ep-{hashlib.sha256(task_name.encode()).hexdigest()[:12]}"


def task_pod_selector(job: JobDescription, task: TaskDescription) -> dict[str, str]:
    """Labels that select exactly this task's pod: ours, and the index its operator writes on each pod."""
    selector = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_JOB_ID: job.job_id, LABEL_ROLE: task.role}
    if job.framework in POD_FRAMEWORKS:
        selector[LABEL_INDEX] = str(task.index)
    elif job.framework in TRAINING:
        selector[TO_REPLICA_INDEX] = str(task.index)
    elif task.replicas > 1:
        selector[VC_TASK_INDEX] = str(task.index)
    return selector


def task_service(cluster: ClusterSettings, job: JobDescription, task: TaskDescription) -> dict[str, Any]:
    metadata = _metadata(cluster, job)
    metadata["name"] = service_name(job.job_id, task.name)
    metadata["labels"] = {**metadata["labels"], LABEL_ROLE: task.role, LABEL_INDEX: str(task.index)}
    ports = [
        {"name": port["name"], "port": port["containerPort"], "targetPort": port["containerPort"], "protocol": "TCP"}
        for port in _ports(task)
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {"type": "ClusterIP", "selector": task_pod_selector(job, task), "ports": ports},
    }


def job_ingress(cluster: ClusterSettings, job: JobDescription) -> dict[str, Any]:
    """One Ingress for the job: a path per task and endpoint, to that task's Service."""
    paths = []
    for task in job.tasks:
        for (name, _number), port in zip(task.ports.items(), _ports(task), strict=True):
            paths.append(
                {
                    "path": endpoint_path(job.job_id, task.name, name),
                    "pathType": "Prefix",
                    "backend": {
                        "service": {"name": service_name(job.job_id, task.name), "port": {"name": port["name"]}}
                    },
                }
            )
    metadata = _metadata(cluster, job)
    metadata["annotations"] = {**metadata["annotations"], **INGRESS_ANNOTATIONS}
    spec: dict[str, Any] = {"rules": [{"host": ingress_rule_host(cluster), "http": {"paths": paths}}]}
    ingress_class = ((getattr(cluster, "settings", None) or {}).get("ingress_class") or "").strip()
    if ingress_class:
        spec["ingressClassName"] = ingress_class
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": spec}


def endpoint_objects(cluster: ClusterSettings, job: JobDescription) -> list[dict[str, Any]]:
    """A Service per task that serves named ports and the job's Ingress; none without an ingress host."""
    if not ingress_address(cluster) or not any(task.ports for task in job.tasks):
        return []
    services = [task_service(cluster, job, task) for task in job.tasks if task.ports]
    return [*services, job_ingress(cluster, job)]


# --- team objects (provisioning) --------------------------------------------------------------


def team_namespace(cluster: ClusterSettings, team: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace_name(cluster, team), "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_TEAM: team}},
    }


def quota_hard(cluster: ClusterSettings, cpu_milli: int, memory_bytes: int, gpu: int) -> dict[str, str]:
    return {
        "requests.cpu": _quantity_cpu(cpu_milli) if cpu_milli else "0",
        "limits.cpu": _quantity_cpu(cpu_milli) if cpu_milli else "0",
        "requests.memory": str(memory_bytes),
        "limits.memory": str(memory_bytes),
        f"requests.{cluster.gpu_resource_name}": str(gpu),
    }


def team_quota(cluster: ClusterSettings, team: str, cpu_milli: int, memory_bytes: int, gpu: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {
            "name": "easyai-quota",
            "namespace": namespace_name(cluster, team),
            "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_TEAM: team},
        },
        "spec": {"hard": quota_hard(cluster, cpu_milli, memory_bytes, gpu)},
    }


def team_queue(
    cluster: ClusterSettings, team: str, cpu_milli: int | None, memory_bytes: int | None, gpu: int | None
) -> dict[str, Any]:
    """A Volcano queue named after the namespace; its capability is the team's quota (none: no cap)."""
    spec: dict[str, Any] = {"weight": 1, "reclaimable": True}
    if cpu_milli is not None:
        spec["capability"] = {
            "cpu": _quantity_cpu(cpu_milli) if cpu_milli else "0",
            "memory": str(memory_bytes or 0),
            cluster.gpu_resource_name: str(gpu or 0),
        }
    return {
        "apiVersion": f"{QUEUE_GROUP}/{QUEUE_VERSION}",
        "kind": "Queue",
        "metadata": {"name": namespace_name(cluster, team), "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_TEAM: team}},
        "spec": spec,
    }


def priority_class(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name, "labels": {LABEL_MANAGED_BY: MANAGED_BY}},
        "value": PRIORITY_VALUES[name],
        "globalDefault": False,
        "description": f"EasyAI jobs of priority {name.removeprefix('easyai-')}",
    }
