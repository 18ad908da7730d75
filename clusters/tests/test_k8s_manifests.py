"""Every manifest the Kubernetes backend renders validates strictly against the shipped schemas."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from clusters.backends.contract.storage import container_env, places
from clusters.backends.kubernetes import manifests as m
from clusters.backends.kubernetes.schema_check import validate_manifest
from clusters.models import Cluster
from jobs.models import Volume
from testing.fakekube import ROLES, make_job

FRAMEWORKS = list(ROLES)


def cluster(*, volcano: bool = False, nfs: bool = True, **fields: Any) -> Cluster:
    values: dict[str, Any] = {
        "name": "gpu-a",
        "kind": Cluster.Kind.KUBERNETES,
        "namespace_prefix": "easyai-",
        "scheduler": Cluster.Scheduler.VOLCANO if volcano else Cluster.Scheduler.DEFAULT,
        "nfs_server": "nfs.example.org" if nfs else "",
        "nfs_path": "/export/easyai" if nfs else "",
        "image_pull_secrets": ["regcred"],
    }
    values.update(fields)
    return Cluster(**values)


# --- every option, pairwise --------------------------------------------------------------------

# Each dimension of a job or cluster that changes what is rendered. The full product would be
# tens of thousands of cases; every pair of values of any two dimensions appearing together in
# at least one case finds the interactions between two options, which is where rendering breaks.
# Framework and scheduler are crossed in full (one dimension), so each framework renders under both.
VOLUMES = {
    "none": [],
    "nfs": [Volume(name="datasets", mount_path="/datasets", nfs_server="nfs2.example.org", nfs_path="/sets")],
    "host": [
        Volume(name="scratch", mount_path="/scratch", read_only=False, host_path="/mnt/scratch"),
        Volume(name="models", mount_path="/models", nfs_server="nfs2.example.org", nfs_path="/models"),
    ],
}
PORTS = {"none": {}, "named": {"tensorboard": 6006, "model_server": 8080}}
DIMENSIONS: dict[str, list[Any]] = {
    "framework_scheduler": [(framework, volcano) for framework in FRAMEWORKS for volcano in (False, True)],
    "priority": ["low", "normal", "high"],
    "volumes": list(VOLUMES),
    "gang": [True, False],
    "pull_secrets": ["list", "none", "text"],
    "ports": list(PORTS),
    "pre_job": [False, True],
    "queue": ["", "shared"],
    "gpu": [False, True],
    "placement": [False, True],
    "oversell": [False, True],
    "nfs": [True, False],
    # The debug toolbox: a role's background services (their ports among the task's named ports), a hold.
    "debug": ["none", "services", "keep_failed", "pause_on_failure"],
    "tools_image": ["default", "registry"],
}


def _pairs_of(case: dict[str, Any]) -> set[tuple[tuple[str, Any], tuple[str, Any]]]:
    items = sorted(case.items(), key=lambda item: list(DIMENSIONS).index(item[0]))
    return {(items[i], items[j]) for i in range(len(items)) for j in range(i + 1, len(items))}


def pairwise_cases(dimensions: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """A deterministic greedy covering array: each case takes, dimension by dimension, the value that
    covers the most pairs not covered yet, seeded by the first uncovered pair."""
    names = list(dimensions)
    uncovered = {
        ((a, x), (b, y))
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        for x in dimensions[a]
        for y in dimensions[b]
    }
    cases: list[dict[str, Any]] = []
    while uncovered:
        (first, x), (second, y) = min(uncovered, key=lambda p: (names.index(p[0][0]), names.index(p[1][0]),
                                                                dimensions[p[0][0]].index(p[0][1]),
                                                                dimensions[p[1][0]].index(p[1][1])))  # fmt: skip
        case = {first: x, second: y}
        for name in names:
            if name in case:
                continue
            case[name] = max(
                dimensions[name],
                key=lambda value: len(_pairs_of({**case, name: value}) & uncovered),
            )
        uncovered -= _pairs_of(case)
        cases.append(case)
    return cases


CASES = pairwise_cases(DIMENSIONS)
PRE_JOB = "j-pre00001"
PULL_SECRETS = {"list": ["regcred", {"name": "mirror"}], "none": [], "text": "regcred, mirror"}


def option_job(case: dict[str, Any]):
    framework, _volcano = case["framework_scheduler"]
    job = make_job(
        framework,
        gpu=2 if case["gpu"] else 0,
        node_selector={"accelerator": "a100"} if case["placement"] else {},
        tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}] if case["placement"] else [],
        oversell=2.0 if case["oversell"] else 1.0,
        priority=case["priority"],
        gang=case["gang"],
        queue=case["queue"],
        volumes=[volume.as_dict() for volume in VOLUMES[case["volumes"]]],
    )
    for task in job.tasks:
        if PORTS[case["ports"]]:
            task.ports = dict(PORTS[case["ports"]])
        if case["pre_job"]:
            # As jobs.describe hands it over: the variable and the NFS sub-path of the previous job's model_dir.
            task.env.update(container_env(job.job_id, task.name, job.owner, PRE_JOB))
            task.storage["pre_model_dir"] = f"/export/easyai/{PRE_JOB}/model_dir"
            task.places = places(job.job_id, task.name, job.owner, PRE_JOB)
        if case["debug"] == "services":
            task.services = SERVICES
            task.ports.update({service["name"]: service["port"] for service in SERVICES})
        elif case["debug"] != "none":
            task.hold_mode, task.hold_seconds = case["debug"], 1800
    return job


SERVICES = [
    {"name": "board", "command": "tensorboard --logdir /summary_dir --port 6007", "port": 6007, "health": "/"},
    {"name": "lab", "command": "jupyter lab --port=8889", "port": 8889, "health": ""},
]
TOOLS_IMAGE = "registry.example.org/easyai/tools:1"


def pod_specs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every pod spec in a rendered object: the replica templates, the Volcano tasks, or the pod itself."""
    spec = manifest["spec"]
    if manifest["kind"] == "Pod":
        return [spec]
    if manifest["kind"] == "Job":
        return [task["template"]["spec"] for task in spec["tasks"]]
    (field,) = [name for name in spec if name.endswith("ReplicaSpecs")]
    return [replica["template"]["spec"] for replica in spec[field].values()]


def test_the_option_matrix_covers_every_pair_and_stays_small():
    covered = set().union(*(_pairs_of(case) for case in CASES))
    names = list(DIMENSIONS)
    every_pair = {
        ((a, x), (b, y))
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        for x in DIMENSIONS[a]
        for y in DIMENSIONS[b]
    }
    assert covered == every_pair
    assert len(CASES) < 80  # the full product would be 995,328


@pytest.mark.parametrize("case", CASES, ids=lambda case: "-".join(
    [case["framework_scheduler"][0], "volcano" if case["framework_scheduler"][1] else "default"]
    + [f"{name}={value}" for name, value in case.items() if name != "framework_scheduler"]))  # fmt: skip
def test_every_option_renders_and_validates_strictly(case):
    framework, volcano = case["framework_scheduler"]
    settings = {"tools_image": TOOLS_IMAGE} if case["tools_image"] == "registry" else {}
    target = cluster(volcano=volcano, nfs=case["nfs"], image_pull_secrets=PULL_SECRETS[case["pull_secrets"]],
                     settings=settings)  # fmt: skip
    (manifest,) = m.render(option_job(case), target)
    assert validate_manifest(manifest) == []

    # Each option reaches the object, so a dropped option cannot pass as valid.
    if volcano:
        priority_class = f"easyai-{case['priority']}"
        queue = case["queue"] or "easyai-vision"
        if manifest["kind"] == "Job":
            assert manifest["spec"]["queue"] == queue and manifest["spec"]["priorityClassName"] == priority_class
            expected = sum(task["replicas"] for task in manifest["spec"]["tasks"])
            assert manifest["spec"]["minAvailable"] == (expected if case["gang"] else 1)
        elif manifest["kind"] == "Pod":
            assert manifest["metadata"]["annotations"][m.VC_QUEUE_ANNOTATION] == queue
        else:
            policy = manifest["spec"]["runPolicy"]["schedulingPolicy"]
            assert policy["queue"] == queue and policy["priorityClass"] == priority_class
            assert ("minAvailable" in policy) is case["gang"]
    for pod in pod_specs(manifest):
        (container,) = pod["containers"]
        mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
        env = {item["name"]: item.get("value") for item in container["env"]}
        volumes = [volume["name"] for volume in pod.get("volumes", [])]
        assert volumes == ([m.NFS_VOLUME] if case["nfs"] else []) + [v.name for v in VOLUMES[case["volumes"]]] + [
            m.TOOLS_VOLUME, m.RUN_VOLUME]  # fmt: skip
        check_toolbox(manifest, pod, case)
        assert {v.mount_path for v in VOLUMES[case["volumes"]]} <= mounts
        assert ("/pre_model_dir" in mounts) is (case["nfs"] and case["pre_job"])
        if case["nfs"] and case["pre_job"]:
            assert env["pre_model_dir"] == "/pre_model_dir"
        if case["ports"] == "named":
            assert {(p["name"], p["containerPort"]) for p in container["ports"]} >= {
                ("tensorboard", 6006), ("model-server", 8080)}  # fmt: skip
            assert env["EASYAI_PORT_MODEL_SERVER"] == "8080"
        secrets = [secret["name"] for secret in pod.get("imagePullSecrets", [])]
        assert secrets == ([] if case["pull_secrets"] == "none" else ["regcred", "mirror"])
        assert (pod.get("priorityClassName") == f"easyai-{case['priority']}") is volcano


def check_toolbox(manifest: dict[str, Any], pod: dict[str, Any], case: dict[str, Any]) -> None:
    """The toolbox in one rendered pod: the tools' init container and volumes, the wrapped command and its
    variables, the services' ports, and a hold's annotations and readiness probe."""
    (init,) = pod["initContainers"]
    assert init["name"] == "easyai-tools"
    assert init["image"] == (TOOLS_IMAGE if case["tools_image"] == "registry" else m.DEFAULT_TOOLS_IMAGE)
    assert init["command"] == ["/tools/busybox", "cp", "-R", "/tools/.", "/easyai/tools/"]
    assert init["volumeMounts"] == [{"name": "easyai-tools", "mountPath": "/easyai/tools"}]
    assert set(init["resources"]["limits"]) == {"cpu", "memory"} == set(init["resources"]["requests"])
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["easyai-tools"] == {"name": "easyai-tools", "emptyDir": {}}
    assert volumes["easyai-run"] == {"name": "easyai-run", "emptyDir": {}}
    (container,) = pod["containers"]
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert mounts["/easyai/tools"] == {"name": "easyai-tools", "mountPath": "/easyai/tools", "readOnly": True}
    assert mounts["/easyai/run"] == {"name": "easyai-run", "mountPath": "/easyai/run"}
    assert container["command"] == ["/easyai/tools/busybox", "sh", "/easyai/tools/easyai-task", "python", "train.py"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["EASYAI_TOOLS"] == "/easyai/tools" and env["EASYAI_RUN_DIR"] == "/easyai/run"
    if case["nfs"]:
        # Beside the task's log, as locally: the role and index are defined before it in the list.
        assert env["EASYAI_SERVICE_LOGS"] == "/log_dir/$(EASYAI_TASK_ROLE)-$(EASYAI_TASK_INDEX).services"
        names = [item["name"] for item in container["env"]]
        assert names.index("EASYAI_TASK_INDEX") < names.index("EASYAI_SERVICE_LOGS")
    else:
        assert env["EASYAI_SERVICE_LOGS"] == "/easyai/run/services"
    annotations = [manifest["metadata"]["annotations"]]
    if manifest["kind"] != "Pod":
        annotations += [template["metadata"]["annotations"] for template in pod_templates(manifest)]
    if case["debug"] == "services":
        assert env["EASYAI_SERVICES"] == "board lab"
        assert env["EASYAI_SERVICE_BOARD"] == SERVICES[0]["command"]
        ports = {(p["name"], p["containerPort"]) for p in container["ports"]}
        assert {("board", 6007), ("lab", 8889)} <= ports
        assert env["EASYAI_PORT_BOARD"] == "6007"
    else:
        assert env["EASYAI_SERVICES"] == ""
    if case["debug"] in ("keep_failed", "pause_on_failure"):
        assert (env["EASYAI_HOLD"], env["EASYAI_HOLD_SECONDS"]) == (case["debug"], "1800")
        for found in annotations:
            assert (found[m.ANNOTATION_HOLD], found[m.ANNOTATION_HOLD_SECONDS]) == (case["debug"], "1800")
        probe = container["readinessProbe"]["exec"]["command"]
        assert probe == ["/easyai/tools/busybox", "test", "!", "-e", "/easyai/run/held"]
        if manifest["kind"] not in ("Pod", "Job"):
            # Failed pods stay where the training-operator would clean them up.
            assert manifest["spec"]["runPolicy"]["cleanPodPolicy"] == "None"
    else:
        assert "EASYAI_HOLD" not in env and "readinessProbe" not in container
        assert all(m.ANNOTATION_HOLD not in found for found in annotations)


def pod_templates(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    spec = manifest["spec"]
    if manifest["kind"] == "Job":
        return [task["template"] for task in spec["tasks"]]
    (field,) = [name for name in spec if name.endswith("ReplicaSpecs")]
    return [replica["template"] for replica in spec[field].values()]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_task_left_to_its_images_entrypoint_gets_the_tools_unwrapped(framework):
    job = make_job(framework)
    for task in job.tasks:
        task.command = []
    (manifest,) = m.render(job, cluster())
    assert validate_manifest(manifest) == []
    for pod in pod_specs(manifest):
        (container,) = pod["containers"]
        assert "command" not in container  # the image's entrypoint and command run as they are
        assert [init["name"] for init in pod["initContainers"]] == ["easyai-tools"]
        assert "/easyai/tools" in {mount["mountPath"] for mount in container["volumeMounts"]}
        assert not any(item["name"].startswith("EASYAI_SERVICE") for item in container["env"])


def test_services_or_a_hold_need_a_command():
    job = make_job("pytorch")
    job.tasks[0].command = []
    job.tasks[0].services = SERVICES[:1]
    job.tasks[1].command = []
    job.tasks[1].hold_mode, job.tasks[1].hold_seconds = "keep_failed", 60
    problems = m.toolbox_problems(job)
    assert len(problems) == 2
    assert problems[0].startswith("master-0: services need the task's command")
    assert problems[1].startswith("worker-0: debug.keep_failed need the task's command")
    job.tasks[0].command = job.tasks[1].command = ["python", "train.py"]
    assert m.toolbox_problems(job) == []


def test_the_tools_image_setting():
    assert m.tools_image(cluster()) == m.DEFAULT_TOOLS_IMAGE == "easyai/tools:1"
    assert m.tools_image(cluster(settings={"tools_image": " mirror.example/tools:2 "})) == "mirror.example/tools:2"
    assert m.tools_image(cluster(settings={"tools_image": ""})) == m.DEFAULT_TOOLS_IMAGE
    assert m.tools_image(cluster(settings={"tools_image": 3})) == m.DEFAULT_TOOLS_IMAGE


@pytest.mark.parametrize("volcano", [False, True])
def test_team_objects_validate(volcano):
    target = cluster(volcano=volcano, gpu_resource_name="amd.com/gpu")
    assert validate_manifest(m.team_namespace(target, "vision")) == []
    quota = m.team_quota(target, "vision", cpu_milli=64000, memory_bytes=256 * 2**30, gpu=8)
    assert validate_manifest(quota) == []
    assert quota["spec"]["hard"]["requests.amd.com/gpu"] == "8"
    assert validate_manifest(m.team_queue(target, "vision", 64000, 256 * 2**30, 8)) == []
    assert validate_manifest(m.team_queue(target, "vision", None, None, None)) == []


def test_pytorch_job_shape():
    job = make_job("pytorch", gpu=1, oversell=2.0)
    (obj,) = m.render(job, cluster(volcano=True))
    assert obj["apiVersion"] == "kubeflow.org/v1" and obj["kind"] == "PyTorchJob"
    assert obj["metadata"]["name"] == "j-ab12cd34"
    assert obj["metadata"]["namespace"] == "easyai-vision"
    assert obj["spec"]["runPolicy"]["cleanPodPolicy"] == "None"
    assert obj["spec"]["runPolicy"]["schedulingPolicy"] == {
        "queue": "easyai-vision",
        "priorityClass": "easyai-normal",
        "minAvailable": 3,
    }
    replicas = obj["spec"]["pytorchReplicaSpecs"]
    assert set(replicas) == {"Master", "Worker"}
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] == 2
    template = replicas["Worker"]["template"]
    assert template["metadata"]["labels"][m.LABEL_JOB_ID] == "j-ab12cd34"
    assert template["metadata"]["labels"][m.LABEL_MANAGED_BY] == "easyai"
    assert template["metadata"]["labels"][m.LABEL_ROLE] == "worker"
    pod = template["spec"]
    assert pod["schedulerName"] == "volcano" and pod["priorityClassName"] == "easyai-normal"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    (container,) = pod["containers"]
    assert container["name"] == "pytorch"
    assert container["resources"] == {
        "limits": {"cpu": "2500m", "memory": str(4 * 2**30), "nvidia.com/gpu": "1"},
        "requests": {"cpu": "1250m", "memory": str(2 * 2**30), "nvidia.com/gpu": "1"},
    }
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["LEARNING_RATE"] == "0.1" and env["model_dir"] == "/model_dir" and env["data_dir"] == "/data_dir"
    assert "RANK" not in env  # the operator sets it per pod
    mounts = {mnt["mountPath"]: mnt for mnt in container["volumeMounts"]}
    assert mounts["/model_dir"]["subPath"] == "j-ab12cd34/model_dir"
    assert mounts["/data_dir"] == {"name": m.NFS_VOLUME, "mountPath": "/data_dir", "subPath": "data/alice",
                                   "readOnly": True}  # fmt: skip
    assert mounts["/summary_dir"]["subPathExpr"] == "j-ab12cd34/$(EASYAI_TASK_ROLE)-$(EASYAI_TASK_INDEX)/summary_dir"
    assert pod["volumes"] == [
        {"name": m.NFS_VOLUME, "nfs": {"server": "nfs.example.org", "path": "/export/easyai"}},
        {"name": m.TOOLS_VOLUME, "emptyDir": {}},
        {"name": m.RUN_VOLUME, "emptyDir": {}},
    ]


@pytest.mark.parametrize(
    ("framework", "field", "types", "container"),
    [
        ("tensorflow", "tfReplicaSpecs", {"Chief", "PS", "Worker", "Evaluator"}, "tensorflow"),
        ("mpi", "mpiReplicaSpecs", {"Launcher", "Worker"}, "mpi"),
        ("xgboost", "xgbReplicaSpecs", {"Master", "Worker"}, "xgboost"),
        ("paddle", "paddleReplicaSpecs", {"Master", "Worker"}, "paddle"),
    ],
)
def test_replica_types_and_container_names(framework, field, types, container):
    (obj,) = m.render(make_job(framework), cluster())
    assert set(obj["spec"][field]) == types
    for replica in obj["spec"][field].values():
        assert replica["template"]["spec"]["containers"][0]["name"] == container
    assert "schedulingPolicy" not in obj["spec"]["runPolicy"]  # default scheduler: no Volcano fields


def test_batch_is_a_volcano_job_with_gang_queue_and_priority():
    (obj,) = m.render(make_job("batch", priority="low", queue="shared"), cluster(volcano=True))
    assert (obj["apiVersion"], obj["kind"]) == ("batch.volcano.sh/v1alpha1", "Job")
    spec = obj["spec"]
    assert spec["minAvailable"] == 4 and spec["queue"] == "shared" and spec["priorityClassName"] == "easyai-low"
    assert [(t["name"], t["replicas"]) for t in spec["tasks"]] == [("driver", 1), ("executor", 3)]
    (no_gang,) = m.render(make_job("batch", gang=False), cluster(volcano=True))
    assert no_gang["spec"]["minAvailable"] == 1


def test_notebook_is_a_plain_pod_in_the_team_queue():
    (pod,) = m.render(make_job("notebook"), cluster(volcano=True))
    assert (pod["apiVersion"], pod["kind"], pod["metadata"]["name"]) == ("v1", "Pod", "j-ab12cd34")
    assert pod["metadata"]["annotations"][m.VC_QUEUE_ANNOTATION] == "easyai-vision"
    assert pod["spec"]["containers"][0]["ports"] == [{"name": "web", "containerPort": 8888, "protocol": "TCP"}]
    mounts = {mnt["mountPath"]: mnt for mnt in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/summary_dir"]["subPath"] == "j-ab12cd34/notebook-0/summary_dir"


def test_same_job_renders_the_same_names():
    first, second = m.render(make_job("tensorflow"), cluster()), m.render(make_job("tensorflow"), cluster())
    assert first == second


def test_owner_that_is_not_a_label_value_is_annotated_whole():
    (obj,) = m.render(make_job("pytorch", owner="ann+ml@example.org"), cluster())
    assert obj["metadata"]["annotations"][m.ANNOTATION_OWNER] == "ann+ml@example.org"
    assert validate_manifest(obj) == []


def test_unknown_role_is_refused_at_render():
    job = make_job("pytorch")
    job.tasks[0].role = "chief"
    with pytest.raises(ValueError, match="no role 'chief'"):
        m.render(job, cluster())


# --- the validator can fail ----------------------------------------------------------------------


@pytest.fixture
def pytorch_job() -> dict[str, Any]:
    return m.render(make_job("pytorch", gpu=1), cluster(volcano=True))[0]


def _master(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["pytorchReplicaSpecs"]["Master"]


def test_unknown_field_is_rejected(pytorch_job):
    _master(pytorch_job)["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert any("imagePullPolicyy" in p for p in validate_manifest(pytorch_job))


def test_unknown_metadata_field_is_rejected(pytorch_job):
    pytorch_job["metadata"]["owner"] = "alice"
    assert any(p.startswith("metadata") and "owner" in p for p in validate_manifest(pytorch_job))


def test_wrong_type_is_rejected(pytorch_job):
    _master(pytorch_job)["replicas"] = "one"
    assert any("replicas" in p and "integer" in p for p in validate_manifest(pytorch_job))


def test_bad_replica_type_is_rejected(pytorch_job):
    pytorch_job["spec"]["pytorchReplicaSpecs"]["Chief"] = copy.deepcopy(_master(pytorch_job))
    assert any("'Chief'" in p for p in validate_manifest(pytorch_job))


def test_two_masters_are_rejected(pytorch_job):
    _master(pytorch_job)["replicas"] = 2
    assert any("at most one Master" in p for p in validate_manifest(pytorch_job))


def test_missing_image_is_rejected(pytorch_job):
    del _master(pytorch_job)["template"]["spec"]["containers"][0]["image"]
    assert any("image: required" in p for p in validate_manifest(pytorch_job))


def test_container_not_named_after_the_framework_is_rejected(pytorch_job):
    _master(pytorch_job)["template"]["spec"]["containers"][0]["name"] = "main"
    assert any("no container named 'pytorch'" in p for p in validate_manifest(pytorch_job))


@pytest.mark.parametrize("name", ["1-starts-with-digit", "Upper", "x" * 64, "under_score"])
def test_bad_name_is_rejected(pytorch_job, name):
    pytorch_job["metadata"]["name"] = name
    assert any("metadata.name" in p for p in validate_manifest(pytorch_job))


def test_bad_label_value_is_rejected(pytorch_job):
    pytorch_job["metadata"]["labels"]["easyai.io/owner"] = "ann@example.org"
    assert any("label value" in p for p in validate_manifest(pytorch_job))


def test_bad_quantity_is_rejected(pytorch_job):
    _master(pytorch_job)["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "two"
    assert any("cpu" in p for p in validate_manifest(pytorch_job))


def test_bad_clean_pod_policy_is_rejected(pytorch_job):
    pytorch_job["spec"]["runPolicy"]["cleanPodPolicy"] = "Sometimes"
    assert any("cleanPodPolicy" in p for p in validate_manifest(pytorch_job))


def test_duplicate_list_map_key_is_rejected(pytorch_job):
    containers = _master(pytorch_job)["template"]["spec"]["containers"]
    containers.append(copy.deepcopy(containers[0]))
    assert any("duplicate" in p for p in validate_manifest(pytorch_job))


def test_volcano_policy_values_are_checked():
    (obj,) = m.render(make_job("batch"), cluster(volcano=True))
    obj["spec"]["policies"][0]["action"] = "Explode"
    obj["spec"]["tasks"][0]["name"] = "executor"  # now twice
    problems = validate_manifest(obj)
    assert any("Explode" in p for p in problems)
    assert any("duplicate task name" in p for p in problems)


def test_volcano_min_available_above_replicas_is_rejected():
    (obj,) = m.render(make_job("batch"), cluster(volcano=True))
    obj["spec"]["minAvailable"] = 99
    assert any("minAvailable" in p for p in validate_manifest(obj))


def test_core_schemas_are_strict_too():
    namespace = m.team_namespace(cluster(), "vision")
    namespace["spec"] = {"finalizers": ["kubernetes"], "bogus": 1}
    assert any("bogus" in p for p in validate_manifest(namespace))
    quota = m.team_quota(cluster(), "vision", 1000, 2**30, 1)
    quota["spec"]["hard"]["requests.cpu"] = {"not": "a quantity"}
    assert validate_manifest(quota)
    pod = m.render(make_job("notebook"), cluster())[0]
    pod["spec"]["containers"][0]["ports"][0]["containerPort"] = "8888"
    assert any("containerPort" in p for p in validate_manifest(pod))


def test_queue_with_unknown_field_is_rejected():
    queue = m.team_queue(cluster(volcano=True), "vision", 1000, 2**30, 1)
    queue["spec"]["capacity"] = {"cpu": "1"}
    assert any("capacity" in p for p in validate_manifest(queue))


def test_unknown_kind_is_reported():
    assert validate_manifest({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})


def test_management_command_validates_files(tmp_path):
    import yaml
    from django.core.management import CommandError, call_command

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump_all(m.render(make_job("paddle"), cluster(volcano=True))))
    call_command("k8s_validate", str(good))
    bad_manifest = m.render(make_job("paddle"), cluster())[0]
    bad_manifest["spec"]["extra"] = True
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(bad_manifest))
    with pytest.raises(CommandError, match="1 manifest"):
        call_command("k8s_validate", str(bad))


def test_the_init_container_is_checked_strictly_too(pytorch_job):
    init = _master(pytorch_job)["template"]["spec"]["initContainers"][0]
    init["volumeMount"] = init.pop("volumeMounts")
    assert any("initContainers.0" in p and "volumeMount" in p for p in validate_manifest(pytorch_job))


def test_an_admin_volume_named_like_the_tools_is_refused():
    job = make_job("pytorch", volumes=[{"name": "easyai-tools", "mountPath": "/x", "emptyDir": {}}])
    (obj,) = m.render(job, cluster())
    assert any("duplicate" in p for p in validate_manifest(obj))
