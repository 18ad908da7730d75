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

A served model (a ``ServiceDescription``) becomes a KServe ``serving.kserve.io/v1beta1`` InferenceService in
its team's namespace (serving).

Every task's pod carries the debug toolbox (an init container copying the cluster's tools image into it, the
command under the toolbox's wrapper, a held task's annotations): see toolbox.

The modules: names (labels, kinds, names), pods (pod templates), toolbox (the debug toolbox in a pod),
workloads (what a job is submitted as), endpoints (Services and the Ingress), team (a team's objects),
serving (InferenceServices).
"""

from clusters.backends.kubernetes.manifests.endpoints import (  # noqa: F401
    endpoint_objects,
    endpoint_path,
    ingress_address,
    ingress_rule_host,
    job_ingress,
    service_name,
    task_pod_selector,
    task_service,
)
from clusters.backends.kubernetes.manifests.names import (  # noqa: F401
    ANNOTATION_JOB_NAME,
    ANNOTATION_OWNER,
    CUSTOM_KINDS,
    DNS_SUBDOMAIN,
    ENDPOINT_KINDS,
    ENDPOINTS_PREFIX,
    ENV_NAME,
    INGRESS_ANNOTATIONS,
    INGRESS_KIND,
    IPV4,
    LABEL_INDEX,
    LABEL_JOB_ID,
    LABEL_MANAGED_BY,
    LABEL_OWNER,
    LABEL_ROLE,
    LABEL_TEAM,
    LABEL_VALUE,
    MANAGED_BY,
    NFS_VOLUME,
    PER_POD_VARIABLES,
    POD_FRAMEWORKS,
    POD_KIND,
    PORT_NAME,
    PRIORITY_CLASSES,
    PRIORITY_VALUES,
    QUEUE_GROUP,
    QUEUE_PLURAL,
    QUEUE_VERSION,
    SELECTOR,
    SERVICE_KIND,
    SUMMARIES_ROOT,
    TO_REPLICA_INDEX,
    TO_REPLICA_TYPE,
    TRAINING,
    TRAINING_GROUP,
    TRAINING_VERSION,
    VC_QUEUE_ANNOTATION,
    VC_TASK_INDEX,
    VC_TASK_SPEC,
    VOLCANO_FRAMEWORKS,
    VOLCANO_GROUP,
    VOLCANO_PLURAL,
    VOLCANO_VERSION,
    ClusterSettings,
    ObjectKind,
    TrainingKind,
    job_annotations,
    job_labels,
    label_value,
    manifest_kind,
    namespace_name,
    object_kind,
    pod_name,
    queue_name,
    roles,
    uses_volcano,
)
from clusters.backends.kubernetes.manifests.pods import (  # noqa: F401
    pod_spec,
    pull_secrets,
    resources,
    summary_mount_path,
    tensorboard_sources,
)
from clusters.backends.kubernetes.manifests.serving import (  # noqa: F401
    ANNOTATION_DEPLOYMENT_MODE,
    CUSTOM_CONTAINER,
    CUSTOM_PORT,
    DEPLOYMENT_MODES,
    INFERENCE_SERVICE_KIND,
    KSERVE_FORMATS,
    KSERVE_GROUP,
    KSERVE_VERSION,
    SPLITTING_MODES,
    inference_service,
    service_labels,
    service_observation,
    service_resources,
    spec_patch,
)
from clusters.backends.kubernetes.manifests.team import (  # noqa: F401
    priority_class,
    quota_hard,
    team_namespace,
    team_queue,
    team_quota,
)
from clusters.backends.kubernetes.manifests.toolbox import (  # noqa: F401
    ANNOTATION_HOLD,
    ANNOTATION_HOLD_SECONDS,
    DEFAULT_TOOLS_IMAGE,
    INIT_CONTAINER,
    RUN_VOLUME,
    TOOLS_VOLUME,
    job_hold,
    pod_hold,
    tools_image,
)
from clusters.backends.kubernetes.manifests.toolbox import problems as toolbox_problems  # noqa: F401
from clusters.backends.kubernetes.manifests.workloads import (  # noqa: F401
    render,
    single_pod,
    training_job,
    volcano_job,
)
