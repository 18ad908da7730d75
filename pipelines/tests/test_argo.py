"""Argo Workflows: a run compiles to a Workflow that validates strictly against the vendored CRD and the rules its
CEL and controller hold, over a matrix of step kinds and features; each rule of the validator is caught; what a
Workflow cannot express is refused with the step's path."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from clusters.backends.kubernetes.schema_check import validate_manifest
from clusters.models import Cluster
from pipelines import spec as pipeline_spec
from pipelines.argo import compile_run, validate_workflow
from pipelines.models import Engine, Pipeline, PipelineRun, PipelineVersion, RunStep
from testing.fakekube import make_cluster

IMAGE = "registry.example/train:1"
JOBS: dict[str, dict[str, Any]] = {
    "batch": {"framework": "batch", "image": IMAGE, "command": ["python", "prep.py"], "roles": {"main": {"replicas": 1}}},
    "batch-gang": {"framework": "batch", "image": IMAGE, "command": ["python", "prep.py"],
                   "roles": {"driver": {"replicas": 1}, "executor": {"replicas": 2}}},
    "pytorch": {"framework": "pytorch", "image": IMAGE, "command": ["python", "train.py"],
                "roles": {"master": {"replicas": 1}, "worker": {"replicas": 2}}},
    "tensorflow": {"framework": "tensorflow", "image": IMAGE, "command": ["python", "train.py"],
                   "roles": {"chief": {"replicas": 1}, "worker": {"replicas": 2}, "ps": {"replicas": 1}}},
    "mpi": {"framework": "mpi", "image": IMAGE, "command": ["mpirun", "python", "train.py"],
            "roles": {"launcher": {"replicas": 1}, "worker": {"replicas": 2}}},
    "xgboost": {"framework": "xgboost", "image": IMAGE, "command": ["python", "train.py"],
                "roles": {"master": {"replicas": 1}, "worker": {"replicas": 1}}},
    "paddle": {"framework": "paddle", "image": IMAGE, "command": ["python", "train.py"],
               "roles": {"master": {"replicas": 1}, "worker": {"replicas": 2}}},
}  # fmt: skip


def argo_cluster(kube, **fields: Any) -> Cluster:
    kube.install("argo")
    settings = {"request_timeout": 1, "pipeline_engine": "argo", **fields.pop("settings", {})}
    return make_cluster(kube, is_default=True, settings=settings, **fields)


def make_run(owner, team, cluster, steps: list[dict], params: dict | None = None, values: dict | None = None):
    spec = pipeline_spec.validate({"name": "chain", "params": params or {}, "steps": steps})
    pipeline = Pipeline.objects.create(team=team, name="chain", owner=owner)
    version = PipelineVersion.objects.create(pipeline=pipeline, number=1, spec={**spec, "team": team.slug})
    resolved = {name: p.get("default") for name, p in spec["params"].items()} | (values or {})
    run = PipelineRun.objects.create(
        pipeline=pipeline, version=version, team=team, owner=owner, params=resolved, engine=Engine.ARGO,
        cluster=cluster,
    )  # fmt: skip
    RunStep.objects.bulk_create([RunStep(run=run, name=s["name"], position=i) for i, s in enumerate(spec["steps"])])
    return run


RESOURCE_KINDS = {"batch-gang": "Job", "pytorch": "PyTorchJob", "tensorflow": "TFJob", "mpi": "MPIJob",
                  "xgboost": "XGBoostJob", "paddle": "PaddleJob"}  # fmt: skip
FIRST = {
    "name": "first",
    "job": JOBS["batch"],
    "outputs": {"parameters": {"acc": "model_dir/acc.txt"}, "artifacts": {"ckpt": "model_dir/ckpt"}},
}
FEATURES: dict[str, dict[str, Any]] = {
    "plain": {},
    "depends": {"depends": "first.failed || first.succeeded"},
    "when": {"depends": "first", "when": "steps.first.outputs.parameters.acc >= 0.5"},
    "outputs": {
        "depends": "first",
        "outputs": {"parameters": {"loss": "model_dir/loss.txt"}, "artifacts": {"model": "model_dir/model"}},
        "job_env": {"ACC": "{{steps.first.outputs.parameters.acc}}", "CKPT": "{{steps.first.outputs.artifacts.ckpt}}"},
    },
    "retry": {"retry": {"limit": 2, "backoff": "30s"}},
    "timeout": {"timeout": "1h"},
    "foreach": {"foreach": ["a", "b"], "job_env": {"PART": "{{item}}"}},
}


def _templates(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def _task(doc: dict, name: str) -> dict:
    return next(t for t in _templates(doc)["main"]["dag"]["tasks"] if t["name"] == name)


def _manifest(template: dict) -> dict:
    return json.loads(template["resource"]["manifest"].replace("{{retries}}", "0"))


def _compile(kube, owner, team, kind: str, feature: str):
    cluster = argo_cluster(kube, scheduler=Cluster.Scheduler.VOLCANO)
    extra = dict(FEATURES[feature])
    env = extra.pop("job_env", None)
    job = copy.deepcopy(JOBS[kind])
    if env:
        job["env"] = env
    run = make_run(owner, team, cluster, [FIRST, {"name": "step", "job": job, **extra}])
    return run, compile_run(run)


@pytest.mark.parametrize("feature", list(FEATURES))
@pytest.mark.parametrize("kind", list(JOBS))
def test_a_run_compiles_to_a_workflow_that_validates_strictly(kube, owner, team, kind, feature):
    run, compiled = _compile(kube, owner, team, kind, feature)
    doc = compiled.workflow
    assert validate_workflow(doc) == []
    assert doc["metadata"]["name"] == run.public_id and doc["metadata"]["namespace"] == "easyai-vision"
    assert doc["metadata"]["labels"]["easyai.io/pipeline-run"] == run.public_id
    templates, task = _templates(doc), _task(doc, "step")
    plan = compiled.plan["step"]
    leaves = [templates[j["template"]] for j in plan["jobs"]]
    assert len(leaves) == (2 if feature == "foreach" else 1)
    for leaf, job in zip(leaves, plan["jobs"], strict=True):
        if kind in RESOURCE_KINDS:
            assert leaf["resource"]["action"] == "create" and leaf["resource"]["setOwnerReference"] is True
            assert leaf["resource"]["successCondition"] and leaf["resource"]["failureCondition"]
            manifest = _manifest(leaf)
            assert manifest["kind"] == RESOURCE_KINDS[kind]
            assert (
                manifest["metadata"]["name"] == manifest["metadata"]["labels"]["easyai.io/job-id"] == job["stem"] + "0"
            )
            assert validate_manifest(manifest) == []
            # The team's queue, as the backend renders it on a Volcano cluster.
            queue = (manifest["spec"].get("runPolicy") or {}).get("schedulingPolicy", {}).get("queue") or manifest[
                "spec"
            ].get("queue")
            assert queue == "easyai-vision"
        else:
            assert "container" in leaf and leaf["container"]["image"] == IMAGE
            assert leaf["metadata"]["labels"]["easyai.io/job-id"].replace("{{retries}}", "0") == job["stem"] + "0"
            assert leaf["metadata"]["annotations"]["scheduling.volcano.sh/queue-name"] == "easyai-vision"
            assert leaf["schedulerName"] == "volcano"
    if feature == "plain":
        assert "depends" not in task and "when" not in task
    if feature == "depends":
        assert task["depends"] == "first.Failed || first.Succeeded"
    if feature == "when":
        assert task["depends"] == "first.Succeeded"
        assert task["when"] == "{{tasks.first.outputs.parameters.acc}} >= 0.5"
    if feature == "outputs":
        assert task["arguments"]["parameters"] == [{"name": "in-0", "value": "{{tasks.first.outputs.parameters.acc}}"}]
        text = json.dumps(leaves[0])
        assert "{{inputs.parameters.in-0}}" in text
        first_job = compiled.plan["first"]["jobs"][0]["stem"] + "0"
        assert f"{first_job}/model_dir/ckpt" in text and "/inputs/first_ckpt" in text
        if kind in RESOURCE_KINDS:
            wrapper = templates[task["template"]]
            reader = templates["out-step"]
            assert [p["valueFrom"]["path"] for p in reader["outputs"]["parameters"]] == [
                "/easyai-job/model_dir/loss.txt"
            ]
            assert {p["name"] for p in wrapper["outputs"]["parameters"]} == {"loss", "job-id"}
        else:
            assert leaves[0]["outputs"]["parameters"] == [
                {"name": "loss", "valueFrom": {"path": "/model_dir/loss.txt"}}
            ]
    if feature == "retry":
        assert leaves[0]["retryStrategy"] == {"limit": 2, "retryPolicy": "Always", "backoff": {"duration": "30s"}}
        assert plan["jobs"][0]["stem"] + "{{retries}}" in json.dumps(leaves[0])
    if feature == "timeout":
        assert leaves[0]["timeout"] == "3600s"
        assert "timeout" not in templates["main"]
    if feature == "foreach":
        items = templates[task["template"]]
        assert [t["name"] for t in items["dag"]["tasks"]] == ["item-0", "item-1"]
        stems = [j["stem"] for j in plan["jobs"]]
        assert len(set(stems)) == 2
        assert [j["data"]["env"]["PART"] for j in plan["jobs"]] == ["a", "b"]
        for leaf, part in zip(leaves, "ab", strict=True):
            if kind in RESOURCE_KINDS:
                assert (
                    json.dumps({"name": "PART", "value": part}, separators=(",", ":")) in leaf["resource"]["manifest"]
                )
            else:
                assert {"name": "PART", "value": part} in leaf["container"]["env"]


@pytest.mark.parametrize("kind", list(JOBS))
def test_a_step_creates_exactly_what_the_kubernetes_backend_renders_for_its_job(kube, owner, team, kind):
    from jobs.describe import describe
    from jobs.models import Job
    from jobs.services import job_prepare

    run, compiled = _compile(kube, owner, team, kind, "plain")
    job = compiled.plan["step"]["jobs"][0]
    spec, team_row, cluster, volumes, _pre = job_prepare(user=owner, data=job["data"])
    record = Job(public_id=job["stem"] + "0", name=spec["name"], team=team_row, owner=owner, cluster=cluster,
                 framework=spec["framework"], spec=spec, priority=spec["priority"])  # fmt: skip
    [rendered] = cluster.backend().render(describe(record, volumes=volumes))
    leaf = _templates(compiled.workflow)[job["template"]]
    if kind in RESOURCE_KINDS:
        assert _manifest(leaf) == rendered
    else:
        pod = rendered["spec"]["tasks"][0]["template"]["spec"]
        assert leaf["container"] == {k: v for k, v in pod["containers"][0].items() if k != "name"}
        assert leaf["volumes"] == pod["volumes"]
        assert leaf["initContainers"] == pod["initContainers"]  # the debug toolbox's tools, copied in first


# --- what the validator catches: each rule once -------------------------------------------------------------


def _valid(kube, owner, team) -> dict:
    return _compile(kube, owner, team, "pytorch", "when")[1].workflow


def _mutate(doc: dict, change) -> dict:
    doc = copy.deepcopy(doc)
    change(doc)
    return doc


def _main_tasks(doc: dict) -> list[dict]:
    return _templates(doc)["main"]["dag"]["tasks"]


BROKEN = {
    "two template kinds": (lambda d: _templates(d)["main"].update(container={"image": "x"}), "exactly one of"),
    "no template kind": (lambda d: _templates(d)["main"].pop("dag"), "exactly one of"),
    "depends and dependencies": (lambda d: _main_tasks(d)[1].update(dependencies=["first"]), "both 'depends'"),
    "continueOn with depends": (lambda d: _main_tasks(d)[1].update(continueOn={"failed": True}), "continueOn"),
    "task name with a digit": (lambda d: _main_tasks(d)[1].update(name="1step"), "cannot begin with a digit"),
    "timeout on a dag": (lambda d: _templates(d)["main"].update(timeout="10s"), "timeout cannot be applied"),
    "deadline on a dag": (lambda d: _templates(d)["main"].update(activeDeadlineSeconds=10), "only valid for leaf"),
    "a number as a parameter": (lambda d: d["spec"]["arguments"]["parameters"].append({"name": "n", "value": 3}),
                                "is a string"),
    "two artifact locations": (
        lambda d: _templates(d)["main"].update(outputs={"artifacts": [{"name": "a", "s3": {"key": "k"},
                                                                       "http": {"url": "u"}}]}),
        "at most one artifact location"),
    "a cycle": (lambda d: _main_tasks(d)[0].update(depends="step.Succeeded"), "cycle"),
    "an unknown dependency": (lambda d: _main_tasks(d)[1].update(depends="nowhere.Succeeded"), "unknown task"),
    "a bad depends": (lambda d: _main_tasks(d)[1].update(depends="first.Done &&"), "first.Done"),
    "no entrypoint": (lambda d: d["spec"].update(entrypoint="nothing"), "spec.entrypoint"),
    "an unknown template": (lambda d: _main_tasks(d)[1].update(template="nothing"), "no template named"),
    "withSequence count and end": (lambda d: _main_tasks(d)[1].update(withSequence={"count": "2", "end": "3"}),
                                   "count or end"),
    "an unknown field": (lambda d: _templates(d)["main"].update(colour="red"), "Additional properties"),
    "a bad manifest": (
        lambda d: next(t for t in d["spec"]["templates"] if "resource" in t)["resource"].update(
            manifest=next(t for t in d["spec"]["templates"] if "resource" in t)["resource"]["manifest"].replace(
                '"Worker"', '"Helper"')),
        "replica type 'Helper'"),
}  # fmt: skip


def test_the_valid_workflow_passes(kube, owner, team):
    assert validate_workflow(_valid(kube, owner, team)) == []


@pytest.mark.parametrize("case", list(BROKEN))
def test_the_validator_catches_each_rule(kube, owner, team, case):
    change, expected = BROKEN[case]
    problems = validate_workflow(_mutate(_valid(kube, owner, team), change))
    assert any(expected in p for p in problems), problems


# --- what cannot compile: refused with the step's path, nothing made -----------------------------------------


REFUSED = {
    "foreach over an output": (
        [FIRST, {"name": "step", "job": JOBS["batch"], "depends": "first",
                 "foreach": "{{steps.first.outputs.parameters.acc}}"}], "steps.1.foreach"),
    "more retries than an id holds": (
        [{"name": "step", "job": JOBS["pytorch"], "retry": {"limit": 10}}], "steps.0.retry.limit"),
    "stdout of a step": (
        [FIRST, {"name": "step", "depends": "first",
                 "job": {**JOBS["batch"], "env": {"OUT": "{{steps.first.outputs.parameters.stdout}}"}}}],
        "steps.1.job"),
    "the job id of a step that retries": (
        [{**FIRST, "retry": {"limit": 1}},
         {"name": "step", "depends": "first", "job": {**JOBS["pytorch"], "pre_job": "{{steps.first.job_id}}"}}],
        "steps.1.job"),
    "a step serving ports": ([{"name": "step", "job": {**JOBS["batch"], "ports": {"web": 8080}}}], "steps.0.job.ports"),
    "a register_model step": (
        [FIRST, {"name": "register", "depends": "first",
                 "register_model": {"name": "m", "from": "{{steps.first.job_id}}", "format": "pytorch"}}],
        "steps.1.register_model"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_argo_cannot_express_is_refused_with_the_step_path(kube, owner, team, case):
    steps, path = REFUSED[case]
    run = make_run(owner, team, argo_cluster(kube), steps)
    with pytest.raises(ValidationError) as caught:
        compile_run(run)
    assert path in caught.value.message_dict, caught.value.message_dict


def test_a_foreach_over_a_param_list_and_the_earlier_job_id_compile_as_values(kube, owner, team):
    cluster = argo_cluster(kube)
    steps = [
        {"name": "pretrain", "job": JOBS["pytorch"]},
        {"name": "finetune", "depends": "pretrain", "foreach": "{{params.parts}}",
         "job": {**JOBS["pytorch"], "pre_job": "{{steps.pretrain.job_id}}", "env": {"PART": "{{item}}"}}},
    ]  # fmt: skip
    run = make_run(owner, team, cluster, steps, params={"parts": {"type": "list", "default": ["x", "y", "z"]}})
    compiled = compile_run(run)
    assert validate_workflow(compiled.workflow) == []
    pretrain = compiled.plan["pretrain"]["jobs"][0]["stem"] + "0"
    jobs = compiled.plan["finetune"]["jobs"]
    assert [j["data"]["pre_job"] for j in jobs] == [pretrain] * 3
    for job in jobs:
        manifest = _manifest(_templates(compiled.workflow)[job["template"]])
        mounts = manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["volumeMounts"]
        assert {"name": "easyai-nfs", "mountPath": "/pre_model_dir", "subPath": f"{pretrain}/model_dir"} in [
            {k: v for k, v in mount.items() if k != "readOnly"} for mount in mounts
        ]
