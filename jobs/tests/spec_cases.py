"""Job specs shared by the spec tests and the API tests.

``BAD_SPECS``: (spec, path) pairs. Each spec has exactly one problem, and
``jobs.spec.validate`` names exactly that path. ``GOOD_SPECS``: one valid spec
per framework.
"""

from __future__ import annotations

import copy
from typing import Any

_DROP = object()  # a field to leave out


def good_spec() -> dict[str, Any]:
    """A valid PyTorch spec: a master and two workers."""
    return {
        "name": "mnist",
        "framework": "pytorch",
        "image": "pytorch/pytorch:2.3",
        "command": "python train.py",
        "roles": {"master": {}, "worker": {"replicas": 2}},
    }


def spec(base: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """The good spec (or ``base``) with some top-level fields replaced, or dropped with _DROP."""
    result = copy.deepcopy(base or good_spec())
    for key, value in fields.items():
        if value is _DROP:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def role(name: str, base: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """The good spec (or ``base``) with fields of one role replaced."""
    result = spec(base)
    result["roles"].setdefault(name, {}).update(fields)
    return result


def scheduling(**fields: Any) -> dict[str, Any]:
    return spec(scheduling=fields)


def toleration(**fields: Any) -> dict[str, Any]:
    return scheduling(tolerations=[fields])


def _framework(framework: str, roles: dict[str, Any]) -> dict[str, Any]:
    return spec(framework=framework, roles=roles)


def _batch(roles: dict[Any, Any]) -> dict[str, Any]:
    return _framework("batch", roles)


GOOD_SPECS: dict[str, dict[str, Any]] = {
    "pytorch": good_spec(),
    "tensorflow": _framework(
        "tensorflow", {"chief": {}, "ps": {"replicas": 2}, "worker": {"replicas": 4, "gpu": 1}, "evaluator": {}}
    ),
    "mpi": _framework("mpi", {"launcher": {"cpu": "500m"}, "worker": {"replicas": 2, "gpu": 2}}),
    "xgboost": _framework("xgboost", {"master": {}, "worker": {"replicas": 3}}),
    "paddle": _framework("paddle", {"worker": {"replicas": 2}}),
    "batch": _batch({"prep": {"command": ["python", "prep.py"]}, "train": {"replicas": 2}}),
}

_LONG = "a" * 64

BAD_SPECS: list[tuple[dict[str, Any], str]] = [
    # name, team, experiment, cluster, framework
    (spec(name=_DROP), "name"),
    (spec(name="MNIST"), "name"),
    (spec(name="-mnist"), "name"),
    (spec(name=_LONG), "name"),
    (spec(name=5), "name"),
    (spec(team="Team_A"), "team"),
    (spec(experiment="x" * 101), "experiment"),
    (spec(experiment=["lr"]), "experiment"),
    (spec(cluster="gpu cluster"), "cluster"),
    (spec(framework=_DROP), "framework"),
    (spec(framework="jax"), "framework"),
    # image, command, working_dir
    (spec(image="my image"), "image"),
    (spec(image=3), "image"),
    (spec(command=_DROP), "command"),
    (spec(command=[]), "command"),
    (spec(command=["python", 1]), "command.1"),
    (spec(command=42), "command"),
    (spec(command="   "), "command"),
    (spec(command=["", "train.py"]), "command.0"),
    (spec(working_dir="code/mnist"), "working_dir"),
    # env
    (spec(env=["LR=0.1"]), "env"),
    (spec(env={"1LR": "0.1"}), "env.1LR"),
    (spec(env={"RANK": "0"}), "env.RANK"),
    (spec(env={"model_dir": "/tmp"}), "env.model_dir"),
    (spec(env={"DEBUG": True}), "env.DEBUG"),
    (spec(env={"EPOCHS": 3}), "env.EPOCHS"),
    (spec(env={"EMPTY": None}), "env.EMPTY"),
    # roles
    (spec(roles=_DROP), "roles"),
    (spec(roles={}), "roles"),
    (spec(roles=["master", "worker"]), "roles"),
    (role("worker", replicas=0), "roles.worker.replicas"),
    (role("worker", replicas="2"), "roles.worker.replicas"),
    (role("worker", replicas=1.5), "roles.worker.replicas"),
    (role("master", replicas=2), "roles.master.replicas"),
    (spec(roles={"worker": {"replicas": 2}}), "roles.master"),
    (role("ps"), "roles.ps"),
    (role("worker", cpu="1Gi"), "roles.worker.cpu"),
    (role("worker", cpu=0), "roles.worker.cpu"),
    (role("worker", cpu="0.0001"), "roles.worker.cpu"),
    (role("worker", cpu=-1), "roles.worker.cpu"),
    (role("worker", cpu=True), "roles.worker.cpu"),
    (role("worker", memory="512m"), "roles.worker.memory"),
    (role("worker", memory="lots"), "roles.worker.memory"),
    (role("worker", memory="0.5"), "roles.worker.memory"),
    (role("worker", memory="8Ei"), "roles.worker.memory"),
    (role("worker", gpu=-1), "roles.worker.gpu"),
    (role("worker", gpu=0.5), "roles.worker.gpu"),
    (role("worker", gpu=True), "roles.worker.gpu"),
    (role("worker", gpu=2**31), "roles.worker.gpu"),
    (role("worker", replica=2), "roles.worker.replica"),
    (spec(roles={"master": {}, "worker": "big"}), "roles.worker"),
    (role("worker", env={"WORLD_SIZE": "4"}), "roles.worker.env.WORLD_SIZE"),
    (role("worker", command=[""]), "roles.worker.command.0"),
    (role("worker", image=5), "roles.worker.image"),
    (spec(command=_DROP, roles={"master": {"command": "python m.py"}, "worker": {}}), "command"),
    # the frameworks' rules
    (_framework("tensorflow", {"chief": {"replicas": 2}, "worker": {}}), "roles.chief.replicas"),
    (_framework("tensorflow", {"worker": {}, "evaluator": {"replicas": 2}}), "roles.evaluator.replicas"),
    (_framework("tensorflow", {"master": {}}), "roles.master"),
    (_framework("mpi", {"worker": {"replicas": 2}}), "roles.launcher"),
    (_framework("mpi", {"launcher": {}}), "roles.worker"),
    (_framework("mpi", {"launcher": {"replicas": 2}, "worker": {}}), "roles.launcher.replicas"),
    (_framework("xgboost", {"worker": {"replicas": 2}}), "roles.master"),
    (_framework("paddle", {"master": {"replicas": 2}, "worker": {}}), "roles.master.replicas"),
    (_batch({"Prep_Data": {}}), "roles.Prep_Data"),
    (_batch({"r" * 41: {}}), "roles." + "r" * 41),
    (_batch({1: {}}), "roles.1"),
    (_batch({"a": {"replicas": 600}, "b": {"replicas": 401}}), "roles"),
    (_batch({"a": {"replicas": 2, "memory": "7Ei"}}), "roles"),
    # priority, scheduling
    (spec(priority="urgent"), "priority"),
    (spec(scheduling="gang"), "scheduling"),
    (scheduling(priority="high"), "scheduling.priority"),
    (scheduling(node_selector={"gpu": 1}), "scheduling.node_selector.gpu"),
    (scheduling(node_selector={"gpu type": "a100"}), "scheduling.node_selector.gpu type"),
    (scheduling(node_selector=["gpu=a100"]), "scheduling.node_selector"),
    (scheduling(tolerations={"key": "gpu"}), "scheduling.tolerations"),
    (toleration(key="gpu", effect="Never"), "scheduling.tolerations.0.effect"),
    (toleration(key="gpu", operator="In"), "scheduling.tolerations.0.operator"),
    (toleration(effect="NoSchedule"), "scheduling.tolerations.0.key"),
    (toleration(key="gpu", operator="Exists", value="a100"), "scheduling.tolerations.0.value"),
    (toleration(key="gpu", seconds=60), "scheduling.tolerations.0.seconds"),
    (scheduling(tolerations=["gpu"]), "scheduling.tolerations.0"),
    (scheduling(queue="Team Queue"), "scheduling.queue"),
    (scheduling(gang="yes"), "scheduling.gang"),
    (scheduling(oversell=0.5), "scheduling.oversell"),
    (scheduling(oversell="2"), "scheduling.oversell"),
    (scheduling(oversell=True), "scheduling.oversell"),
    # pre_job, volumes, timeout, max_retries, ports
    (spec(pre_job="job-1"), "pre_job"),
    (spec(pre_job="j-ABC12345"), "pre_job"),
    (spec(volumes="datasets"), "volumes"),
    (spec(volumes=["datasets", 3]), "volumes.1"),
    (spec(volumes=["datasets", "datasets"]), "volumes.1"),
    (spec(timeout="soon"), "timeout"),
    (spec(timeout="0s"), "timeout"),
    (spec(timeout=-5), "timeout"),
    (spec(timeout="1h 30m"), "timeout"),
    (spec(max_retries=11), "max_retries"),
    (spec(max_retries="1"), "max_retries"),
    (spec(ports={"http": 0}), "ports.http"),
    (spec(ports={"http": 70000}), "ports.http"),
    (spec(ports={"http": "8080"}), "ports.http"),
    (spec(ports={"Web_UI": 80}), "ports.Web_UI"),
    (spec(ports={"a-long-port-name": 80}), "ports.a-long-port-name"),
    (spec(ports={"8080": 8080}), "ports.8080"),
    (spec(ports=[8080]), "ports"),
    # fields nobody defined
    (spec(replicas=3), "replicas"),
    (spec(Name="mnist"), "Name"),
]
