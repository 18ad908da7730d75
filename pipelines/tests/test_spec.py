"""The pipeline spec: validation, every problem by its path, the graph, references and each step's job. No
database."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from jobs.spec import SpecError
from pipelines.spec import PipelineSpecError, parse, to_text, validate
from pipelines.spec.validate import MAX_FOREACH, MAX_STEPS

BATCH = {"framework": "batch", "command": "echo hi", "roles": {"main": {}}}

EXAMPLE = """
name: train-chain
team: vision
description: prepare, train over three splits, evaluate, register when good enough
params:
  lr: 0.01
  epochs: 3
  verbose: false
  model: bert
  threshold: {type: float, default: 1}
  splits: [a, b, c]
  dataset: {type: string}
steps:
  - name: prepare
    job:
      framework: batch
      command: "prepare --data {{params.dataset}} --at {{schedule.time}} --run {{ run.id }}"
      roles: {main: {cpu: 2}}
    outputs:
      parameters: {count: /model_dir/count.txt}
      artifacts: {data: share_dir/data/}
  - name: train
    depends: [prepare]
    foreach: "{{params.splits}}"
    job:
      framework: pytorch
      command: "train --lr {{params.lr}} --split {{item}} --data {{steps.prepare.outputs.artifacts.data}}"
      roles: {master: {}, worker: {replicas: "{{params.epochs}}", gpu: 1}}
      pre_job: "{{steps.prepare.job_id}}"
      env: {VERBOSE: "{{params.verbose}}", COUNT: "{{steps.prepare.outputs.parameters.count}}"}
    outputs:
      parameters: {accuracy: model_dir/accuracy.txt}
      artifacts: {checkpoint: model_dir/ckpt}
    retry: {limit: 2, backoff: 2m}
    timeout: 1h
    cache: v2
  - name: evaluate
    depends: train.completed && prepare
    when: "steps.prepare.outputs.parameters.count > 0 && params.verbose == false"
    job:
      framework: batch
      command: "evaluate {{steps.train.outputs.parameters.accuracy}} {{steps.train.outputs.artifacts.checkpoint}}"
      roles: {main: {}}
    outputs:
      parameters: {accuracy: model_dir/accuracy.txt}
    retry: 1
    cache: true
  - name: register
    depends: "evaluate"
    when: "{{steps.evaluate.outputs.parameters.accuracy}} >= params.threshold"
    job:
      framework: batch
      command: "register {{steps.train.job_id}} {{steps.evaluate.outputs.parameters.stdout}}"
      roles: {main: {}}
"""


def errors_of(data: Any) -> dict[str, list[str]]:
    with pytest.raises(SpecError) as caught:
        validate(data)
    return caught.value.errors


def pipeline(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "p", **fields, "steps": list(steps)}


def step(name: str, job: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {"name": name, "job": job or BATCH, **fields}


def batch(command: str, **fields: Any) -> dict[str, Any]:
    return {**BATCH, "command": command, **fields}


def only_error(data: Any) -> tuple[str, str]:
    errors = errors_of(data)
    assert len(errors) == 1, errors
    [(path, messages)] = errors.items()
    assert len(messages) == 1, messages
    return path, messages[0]


# --- a good spec -----------------------------------------------------------------------------


def test_the_example_validates_to_the_normalized_form():
    spec = validate(parse(EXAMPLE))
    assert spec["name"] == "train-chain"
    assert spec["team"] == "vision"
    assert spec["params"] == {
        "lr": {"type": "float", "default": 0.01},
        "epochs": {"type": "int", "default": 3},
        "verbose": {"type": "bool", "default": False},
        "model": {"type": "string", "default": "bert"},
        "threshold": {"type": "float", "default": 1.0},
        "splits": {"type": "list", "default": ["a", "b", "c"]},
        "dataset": {"type": "string", "default": None},
    }
    assert isinstance(spec["params"]["threshold"]["default"], float)
    prepare, train, evaluate, register = spec["steps"]
    assert list(prepare) == [
        "name", "job", "depends", "requires", "when", "outputs", "retry", "timeout", "cache", "foreach",
    ]  # fmt: skip
    assert prepare["depends"] == "" and prepare["requires"] == [] and prepare["when"] == ""
    assert prepare["outputs"] == {
        "parameters": {"count": "model_dir/count.txt"},
        "artifacts": {"data": "share_dir/data"},
    }
    assert prepare["retry"] == {"limit": 0, "backoff": 0}
    assert (prepare["timeout"], prepare["cache"], prepare["foreach"]) == (None, "", None)
    assert train["depends"] == "prepare" and train["requires"] == ["prepare"]
    assert train["retry"] == {"limit": 2, "backoff": 120}
    assert (train["timeout"], train["cache"], train["foreach"]) == (3600, "v2", "{{params.splits}}")
    # The job is kept as written: templates unrendered, not job-normalized.
    assert train["job"]["roles"]["worker"] == {"replicas": "{{params.epochs}}", "gpu": 1}
    assert train["job"]["pre_job"] == "{{steps.prepare.job_id}}"
    assert evaluate["depends"] == "train.completed && prepare"
    assert evaluate["requires"] == ["prepare", "train"]  # in step order
    assert evaluate["retry"] == {"limit": 1, "backoff": 0} and evaluate["cache"] == "true"
    assert register["requires"] == ["evaluate"]


def test_a_normalized_spec_validates_to_itself():
    spec = validate(parse(EXAMPLE))
    assert validate(copy.deepcopy(spec)) == spec
    assert validate(json.loads(json.dumps(spec))) == spec


def test_parse_reads_json_too_and_the_error_class_is_the_job_specs():
    spec = validate(parse(json.dumps(pipeline(step("a"))), "application/json"))
    assert spec["steps"][0]["job"] == BATCH
    assert PipelineSpecError is SpecError
    with pytest.raises(SpecError):
        parse("name: [")


def test_validate_does_not_change_its_input():
    data = parse(EXAMPLE)
    before = copy.deepcopy(data)
    spec = validate(data)
    assert data == before
    spec["steps"][1]["job"]["roles"]["master"]["x"] = 1
    assert "x" not in data["steps"][1]["job"]["roles"]["master"]


def test_the_smallest_pipeline():
    assert validate({"name": "p", "steps": [{"name": "a", "job": BATCH}]}) == {
        "name": "p",
        "team": None,
        "description": "",
        "params": {},
        "steps": [
            {
                "name": "a",
                "job": BATCH,
                "depends": "",
                "requires": [],
                "when": "",
                "outputs": {"parameters": {}, "artifacts": {}},
                "retry": {"limit": 0, "backoff": 0},
                "timeout": None,
                "cache": "",
                "foreach": None,
            }
        ],
    }


# --- top-level fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ([], "spec", "must be a mapping of fields (name, params, steps, ...), not a list"),
        ({"steps": [step("a")]}, "name", "required"),
        (pipeline(step("a"), name="Train"), "name", "must be lowercase letters, digits and '-', starting and ending with a letter or digit"),
        (pipeline(step("a"), name="a" * 41), "name", "must be at most 40 characters"),
        (pipeline(step("a"), name=5), "name", "must be a string, not a number; put it in quotes"),
        (pipeline(step("a"), team="Vision"), "team", "must be lowercase letters, digits and '-', starting and ending with a letter or digit"),
        (pipeline(step("a"), description="x" * 2001), "description", "must be at most 2000 characters"),
        (pipeline(step("a"), stepz=1), "stepz", "unknown field; did you mean 'steps'?"),
        (pipeline(step("a"), param={}), "param", "unknown field; did you mean 'params'?"),
        ({"name": "p"}, "steps", "at least one step is required"),
        ({"name": "p", "steps": {"a": BATCH}}, "steps", "must be a list of steps, not a mapping"),
        (pipeline(*[step(f"s{i}") for i in range(MAX_STEPS + 1)]), "steps", f"at most {MAX_STEPS} steps, not {MAX_STEPS + 1}"),
    ],
)  # fmt: skip
def test_a_bad_top_level_field_names_its_path(data, path, message):
    assert only_error(data) == (path, message)


def test_a_document_nested_too_deeply_is_refused_before_anything_else():
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    path, message = only_error(pipeline(step("a", batch("x", env={"A": deep})), name="BAD"))
    assert message.startswith("is nested too deeply")


# --- params ----------------------------------------------------------------------------------


def test_params_infer_their_type_from_a_bare_default():
    spec = validate(
        pipeline(step("a"), params={"s": "x", "i": 2, "f": 0.5, "b": True, "l": [1, {"k": "v"}], "n": None})
    )
    assert spec["params"] == {
        "s": {"type": "string", "default": "x"},
        "i": {"type": "int", "default": 2},
        "f": {"type": "float", "default": 0.5},
        "b": {"type": "bool", "default": True},
        "l": {"type": "list", "default": [1, {"k": "v"}]},
        "n": {"type": "string", "default": None},
    }


def test_params_in_the_mapping_form():
    params = {"a": {"type": "int"}, "b": {"default": 0.1}, "c": {"type": "float", "default": 2}, "d": {}}
    assert validate(pipeline(step("a"), params=params))["params"] == {
        "a": {"type": "int", "default": None},
        "b": {"type": "float", "default": 0.1},
        "c": {"type": "float", "default": 2.0},
        "d": {"type": "string", "default": None},
    }


@pytest.mark.parametrize(
    ("params", "path", "message"),
    [
        ({"lr": {"type": "double"}}, "params.lr.type", "must be one of string, int, float, bool, list"),
        ({"lr": {"typ": "float"}}, "params.lr.typ", "unknown field; did you mean 'type'?"),
        ({"LR": 1}, "params.LR", "is not a parameter name: it must be lowercase letters, digits and '_', not starting with a digit, at most 63 characters"),
        ({"9a": 1}, "params.9a", "is not a parameter name: it must be lowercase letters, digits and '_', not starting with a digit, at most 63 characters"),
        ({"a-b": 1}, "params.a-b", "is not a parameter name: it must be lowercase letters, digits and '_', not starting with a digit, at most 63 characters"),
        ({"n": {"type": "int", "default": "3"}}, "params.n.default", "must be a whole number (the parameter is an int), not a string"),
        ({"n": {"type": "int", "default": 1.5}}, "params.n.default", "must be a whole number (the parameter is an int), not a number"),
        ({"n": {"type": "int", "default": True}}, "params.n.default", "must be a whole number (the parameter is an int), not a boolean"),
        ({"n": {"type": "int", "default": 2**63}}, "params.n.default", "is too large"),
        ({"f": {"type": "float", "default": "0.1"}}, "params.f.default", "must be a number (the parameter is a float), not a string"),
        ({"f": {"type": "float", "default": float("inf")}}, "params.f.default", "must be a finite number"),
        ({"b": {"type": "bool", "default": "true"}}, "params.b.default", "must be true or false (the parameter is a bool), not a string"),
        ({"s": {"type": "string", "default": 1}}, "params.s.default", "must be a string, not a number; put it in quotes"),
        ({"s": {"type": "string", "default": "a\x00"}}, "params.s.default", "must not contain NUL characters"),
        ({"l": {"type": "list", "default": "a,b"}}, "params.l.default", "must be a list (the parameter is a list), not a string"),
        ({"l": list(range(MAX_FOREACH + 1))}, "params.l", f"at most {MAX_FOREACH} items, not {MAX_FOREACH + 1}"),
        ({"m": {"type": "string", "default": {"a": 1}}}, "params.m.default", "must be a string, not a mapping"),
        ({"m": {"default": {"a": 1}}}, "params.m.default", "must be a string, number, boolean or list, not a mapping"),
    ],
)  # fmt: skip
def test_a_bad_param_names_its_path(params, path, message):
    assert only_error(pipeline(step("a"), params=params)) == (path, message)


def test_params_must_be_a_mapping():
    assert only_error(pipeline(step("a"), params=["lr"])) == (
        "params",
        "must be a mapping of names to defaults (or to type and default), not a list",
    )


# --- steps -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ("a", "steps.0", "must be a mapping, not a string"),
        ({"job": BATCH}, "steps.0.name", "required"),
        (step("Train"), "steps.0.name", "must be lowercase letters, digits and '-', starting with a letter, at most 40 characters"),
        (step("1st"), "steps.0.name", "must be lowercase letters, digits and '-', starting with a letter, at most 40 characters"),
        (step("a" * 41), "steps.0.name", "must be at most 40 characters"),
        (step("a", depend="b"), "steps.0.depend", "unknown field; did you mean 'depends'?"),
        ({"name": "a"}, "steps.0.job", "required: the job spec this step runs (framework, roles, command, ...)"),
        ({"name": "a", "job": "batch"}, "steps.0.job", "must be a job spec mapping (framework, roles, command, ...), not a string"),
        (step("a", {**BATCH, "name": "x"}), "steps.0.job.name", "is set by the pipeline"),
        (step("a", {**BATCH, "team": "vision"}), "steps.0.job.team", "is set by the pipeline"),
        (step("a", {**BATCH, "roles": {"main": {"replicas": 0}}}), "steps.0.job.roles.main.replicas", "must be at least 1"),
        (step("a", {**BATCH, "framework": "jax"}), "steps.0.job.framework", "must be one of pytorch, tensorflow, mpi, xgboost, paddle, batch"),
        (step("a", {**BATCH, "colours": "red"}), "steps.0.job.colours", "unknown field"),
        (step("a", {"framework": "pytorch", "command": "x", "roles": {"worker": {}}}), "steps.0.job.roles.master", "required: a pytorch job needs a master"),
        # outputs
        (step("a", outputs={"parameters": {"acc": "/tmp/acc"}}), "steps.0.outputs.parameters.acc", "must be a file under model_dir/ or share_dir/, such as model_dir/accuracy.txt"),
        (step("a", outputs={"parameters": {"acc": "model_dir"}}), "steps.0.outputs.parameters.acc", "must be a file under model_dir/ or share_dir/, such as model_dir/accuracy.txt"),
        (step("a", outputs={"artifacts": {"ckpt": "data_dir/x"}}), "steps.0.outputs.artifacts.ckpt", "must be a file or folder under model_dir/ or share_dir/, such as model_dir/accuracy.txt"),
        (step("a", outputs={"parameters": {"acc": "model_dir/../x"}}), "steps.0.outputs.parameters.acc", "must not have empty, '.' or '..' parts"),
        (step("a", outputs={"parameters": {"acc": "model_dir//x"}}), "steps.0.outputs.parameters.acc", "must not have empty, '.' or '..' parts"),
        (step("a", outputs={"parameters": {"acc": "model_dir/./x"}}), "steps.0.outputs.parameters.acc", "must not have empty, '.' or '..' parts"),
        (step("a", outputs={"parameters": {"acc": ""}}), "steps.0.outputs.parameters.acc", "must not be empty"),
        (step("a", outputs={"parameters": {"acc": 1}}), "steps.0.outputs.parameters.acc", "must be a string, not a number; put it in quotes"),
        (step("a", outputs={"parameters": {"stdout": "model_dir/x"}}), "steps.0.outputs.parameters.stdout", "is a built-in output of every step (stdout, exit_code, job_id)"),
        (step("a", outputs={"artifacts": {"job_id": "model_dir/x"}}), "steps.0.outputs.artifacts.job_id", "is a built-in output of every step (stdout, exit_code, job_id)"),
        (step("a", outputs={"parameters": {"Acc": "model_dir/x"}}), "steps.0.outputs.parameters.Acc", "is not an output name: it must be lowercase letters, digits and '_', not starting with a digit, at most 63 characters"),
        (step("a", outputs={"parameter": {}}), "steps.0.outputs.parameter", "unknown field; did you mean 'parameters'?"),
        (step("a", outputs={"parameters": ["acc"]}), "steps.0.outputs.parameters", "must be a mapping of names to paths, not a list"),
        (step("a", outputs="model_dir/x"), "steps.0.outputs", "must be a mapping, not a string"),
        # retry, timeout, cache
        (step("a", retry={"limit": 11}), "steps.0.retry.limit", "must be at most 10"),
        (step("a", retry=-1), "steps.0.retry.limit", "must be at least 0"),
        (step("a", retry={"limit": "2"}), "steps.0.retry.limit", "must be a whole number, not a string"),
        (step("a", retry={"backoff": "2h"}), "steps.0.retry.backoff", "must be at most 1 hour (3600s)"),
        (step("a", retry={"backoff": "soon"}), "steps.0.retry.backoff", "'soon' is not a duration such as 90s, 30m, 2h, 1d or 1h30m"),
        (step("a", retry={"limits": 1}), "steps.0.retry.limits", "unknown field; did you mean 'limit'?"),
        (step("a", retry="twice"), "steps.0.retry", "must be a mapping of limit and backoff (or a limit), not a string"),
        (step("a", timeout=0), "steps.0.timeout", "must be longer than 0s"),
        (step("a", timeout="8d"), "steps.0.timeout", "must be at most 7 days"),
        (step("a", timeout=1.5), "steps.0.timeout", "a duration must be text such as 90s, 30m, 2h, 1d or 1h30m"),
        (step("a", cache="false"), "steps.0.cache", "write false without quotes to turn caching off"),
        (step("a", cache="v 2"), "steps.0.cache", "must be true, false or a version such as v2: letters, digits, '.', '_' and '-', at most 40 characters"),
        (step("a", cache="v" * 41), "steps.0.cache", "must be true, false or a version such as v2: letters, digits, '.', '_' and '-', at most 40 characters"),
        (step("a", cache=2), "steps.0.cache", "must be true, false or a version such as v2: letters, digits, '.', '_' and '-', at most 40 characters"),
        # foreach
        (step("a", foreach=[]), "steps.0.foreach", "must have at least one item"),
        (step("a", foreach=list(range(MAX_FOREACH + 1))), "steps.0.foreach", f"at most {MAX_FOREACH} items, not {MAX_FOREACH + 1}"),
        (step("a", foreach="a,b"), "steps.0.foreach", 'must be a list or exactly one template, such as "{{params.items}}" or "{{steps.NAME.outputs.parameters.NAME}}"'),
        (step("a", foreach="{{params.a}} {{params.b}}"), "steps.0.foreach", 'must be a list or exactly one template, such as "{{params.items}}" or "{{steps.NAME.outputs.parameters.NAME}}"'),
        (step("a", foreach=3), "steps.0.foreach", 'must be a list or exactly one template, such as "{{params.items}}" or "{{steps.NAME.outputs.parameters.NAME}}"'),
        (step("a", foreach=["x", "{{run.id}}"]), "steps.0.foreach.1", 'templates are not filled in inside a foreach list: write the whole foreach as one template, such as "{{params.items}}"'),
        (step("a", foreach="{{schedule.time}}"), "steps.0.foreach", "{{schedule.time}}: a foreach needs a list: an output parameter of an earlier step or a list parameter"),
        (step("a", foreach="{{item}}"), "steps.0.foreach", "{{item}}: a foreach cannot refer to its own items"),
        # when
        (step("a", when="params.x >"), "steps.0.when", "expected a value at 10"),
        (step("a", when=["x"]), "steps.0.when", "must be a condition such as 'params.x > 1', not a list"),
        (step("a", when="params.x == 1"), "steps.0.when", "params.x: unknown parameter 'x'"),
        (step("a", when="item == 1"), "steps.0.when", "item: item is set only in a step with foreach"),
    ],
)  # fmt: skip
def test_a_bad_step_field_names_its_path(body, path, message):
    assert only_error(pipeline(body)) == (path, message)


def test_two_steps_of_one_name():
    assert only_error(pipeline(step("a"), step("b"), step("a"))) == (
        "steps.2.name",
        "is the name of steps.0 too: step names are unique",
    )


def test_outputs_paths_are_normalized():
    spec = validate(
        pipeline(
            step(
                "a",
                outputs={
                    "parameters": {"acc": "/model_dir/eval/acc.txt", "n": "share_dir/n"},
                    "artifacts": {"ckpt": "/model_dir/ckpt/", "data": "share_dir/a b/c"},
                },
            )
        )
    )
    assert spec["steps"][0]["outputs"] == {
        "parameters": {"acc": "model_dir/eval/acc.txt", "n": "share_dir/n"},
        "artifacts": {"ckpt": "model_dir/ckpt", "data": "share_dir/a b/c"},
    }


def test_retry_timeout_cache_and_when_forms():
    spec = validate(
        pipeline(
            step("a", retry={"limit": 3, "backoff": "1m30s"}, timeout="7d", cache=False, when=True),
            step("b", retry={"backoff": 10}, timeout=60, cache="true", when="  params.x == 1 ", depends=[]),
            params={"x": 1},
        )
    )
    a, b = spec["steps"]
    assert (a["retry"], a["timeout"], a["cache"], a["when"]) == ({"limit": 3, "backoff": 90}, 7 * 86400, "", "true")
    assert (b["retry"], b["timeout"], b["cache"], b["when"]) == (
        {"limit": 0, "backoff": 10},
        60,
        "true",
        "params.x == 1",
    )
    assert b["depends"] == "" and b["requires"] == []


def test_requires_in_input_is_derived_again_from_depends():
    spec = validate(pipeline(step("a"), step("b", depends="a", requires=["x", "y"])))
    assert spec["steps"][1]["requires"] == ["a"]


# --- depends and the graph -------------------------------------------------------------------


def test_a_list_of_names_becomes_an_and():
    spec = validate(pipeline(step("a"), step("b"), step("c", depends=["b", "a.failed"])))
    assert spec["steps"][2]["depends"] == "b && a.failed"
    assert spec["steps"][2]["requires"] == ["a", "b"]


def test_requires_is_every_named_step_in_step_order():
    spec = validate(pipeline(step("z"), step("y"), step("x"), step("w", depends="x.failed || (y && !z.skipped)")))
    assert spec["steps"][3]["requires"] == ["z", "y", "x"]


def test_a_step_may_depend_on_a_step_written_after_it():
    spec = validate(pipeline(step("b", depends="a"), step("a")))
    assert spec["steps"][0]["requires"] == ["a"]


@pytest.mark.parametrize(
    ("depends", "path", "message"),
    [
        (["a", "b c"], "steps.1.depends.1", "must be a step name, or a step name and .succeeded, .failed, .skipped or .completed"),
        (["a", 3], "steps.1.depends.1", "must be a step name, or a step name and .succeeded, .failed, .skipped or .completed"),
        (["a.done"], "steps.1.depends.0", "must be a step name, or a step name and .succeeded, .failed, .skipped or .completed"),
        (3, "steps.1.depends", "must be a list of step names or an expression such as 'a && b.failed', not a number"),
        ("a && && b", "steps.1.depends", "expected a step name at 5"),
        ("a.faild", "steps.1.depends", "expected succeeded, failed, skipped or completed after the '.' at 2"),
        ("a && prepar", "steps.1.depends", "unknown step 'prepar'"),
        ("a && prepair", "steps.1.depends", "unknown step 'prepair'"),
    ],
)  # fmt: skip
def test_a_bad_depends_names_its_path(depends, path, message):
    assert only_error(pipeline(step("a"), step("b", depends=depends))) == (path, message)


def test_an_unknown_step_in_depends_gets_a_suggestion():
    assert only_error(pipeline(step("prepare"), step("b", depends="prepare && prepair"))) == (
        "steps.1.depends",
        "unknown step 'prepair'; did you mean 'prepare'?",
    )


def test_a_cycle_is_named_at_its_first_step():
    assert only_error(pipeline(step("a", depends="b"), step("b", depends="a"))) == (
        "steps.0.depends",
        "is part of a cycle: a → b → a (each depends on the next)",
    )


def test_a_step_depending_on_itself_is_a_cycle():
    assert only_error(pipeline(step("x"), step("a", depends="x && a.failed"))) == (
        "steps.1.depends",
        "is part of a cycle: a → a (each depends on the next)",
    )


def test_each_cycle_is_named_once():
    errors = errors_of(
        pipeline(
            step("a", depends="c"),
            step("b", depends="a"),
            step("c", depends="b && d"),
            step("d", depends="c"),
            step("e", depends="d"),  # after a cycle, not in one
        )
    )
    assert errors == {
        "steps.0.depends": ["is part of a cycle: a → c → b → a (each depends on the next)"],
        "steps.3.depends": ["is part of a cycle: d → c → d (each depends on the next)"],
    }


# --- references ------------------------------------------------------------------------------


def test_references_to_ancestors_params_and_builtins_are_fine():
    spec = validate(
        pipeline(
            step("a", outputs={"parameters": {"n": "model_dir/n"}, "artifacts": {"ckpt": "model_dir/ckpt"}}),
            step("b", depends="a.failed"),
            step(
                "c",
                batch(
                    "{{steps.a.outputs.parameters.n}} {{steps.a.outputs.parameters.stdout}} "
                    "{{steps.a.outputs.parameters.exit_code}} {{steps.a.outputs.parameters.job_id}} "
                    "{{steps.a.job_id}} {{steps.a.outputs.artifacts.ckpt}} {{params.x}} {{schedule.time}} {{run.id}}"
                ),
                depends="b",  # a is an ancestor through b
                when="steps.a.outputs.parameters.n > 1 && {{steps.a.outputs.parameters.exit_code}} == 0",
            ),
            params={"x": "y"},
        )
    )
    assert spec["steps"][2]["requires"] == ["b"]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("{{params.lrr}}", "{{params.lrr}}: unknown parameter 'lrr'; did you mean 'lr'?"),
        ("{{steps.prepar.job_id}}", "{{steps.prepar.job_id}}: unknown step 'prepar'; did you mean 'prepare'?"),
        ("{{steps.other.job_id}}", "{{steps.other.job_id}}: refers to step 'other', which this step does not depend on (add it to depends)"),
        ("{{steps.later.job_id}}", "{{steps.later.job_id}}: refers to step 'later', which this step does not depend on (add it to depends)"),
        ("{{steps.train.job_id}}", "{{steps.train.job_id}}: a step cannot refer to itself"),
        ("{{steps.prepare.outputs.parameters.acuracy}}", "{{steps.prepare.outputs.parameters.acuracy}}: step 'prepare' has no output parameter 'acuracy'; did you mean 'accuracy'?"),
        ("{{steps.prepare.outputs.parameters.ckpt}}", "{{steps.prepare.outputs.parameters.ckpt}}: step 'prepare' has no output parameter 'ckpt'"),
        ("{{steps.prepare.outputs.artifacts.stdout}}", "{{steps.prepare.outputs.artifacts.stdout}}: step 'prepare' has no output artifact 'stdout'"),
        ("{{steps.prepare.outputs.artifacts.acuracy}}", "{{steps.prepare.outputs.artifacts.acuracy}}: step 'prepare' has no output artifact 'acuracy'"),
        ("{{item}}", "{{item}}: item is set only in a step with foreach"),
        ("{{ param.lr }}", "{{param.lr}}: is not a reference: one of params.NAME, steps.NAME.job_id, steps.NAME.outputs.parameters.NAME, steps.NAME.outputs.artifacts.NAME, item, item.KEY, schedule.time or run.id"),
    ],
)  # fmt: skip
def test_a_bad_reference_in_a_job_names_the_string_that_holds_it(command, message):
    data = pipeline(
        step("prepare", outputs={"parameters": {"accuracy": "model_dir/a"}, "artifacts": {"ckpt": "model_dir/c"}}),
        step("other"),
        step("train", batch("echo", env={"A": command}), depends="prepare"),
        step("later", depends="train"),
        params={"lr": 0.1},
    )
    assert only_error(data) == ("steps.2.job.env.A", message)


def test_every_bad_reference_of_a_string_is_reported():
    errors = errors_of(pipeline(step("a", batch("x", roles={"main": {"env": {"B": "{{params.a}} {{params.b}}"}}}))))
    assert errors == {
        "steps.0.job.roles.main.env.B": ["{{params.a}}: unknown parameter 'a'", "{{params.b}}: unknown parameter 'b'"]
    }


def test_a_template_in_a_list_of_the_job_is_found_with_its_index():
    path, message = only_error(pipeline(step("a", batch(["python", "t.py", "--lr", "{{params.lr}}"]))))
    assert (path, message) == ("steps.0.job.command.3", "{{params.lr}}: unknown parameter 'lr'")


def test_a_when_refers_only_to_ancestors():
    assert only_error(
        pipeline(step("a"), step("b", when="steps.a.outputs.parameters.stdout == 'ok'"))
    ) == ("steps.1.when", "steps.a.outputs.parameters.stdout: refers to step 'a', which this step does not depend on (add it to depends)")  # fmt: skip


def test_a_bad_param_is_not_also_an_unknown_one():
    errors = errors_of(pipeline(step("a", batch("{{params.n}}")), params={"n": {"type": "int", "default": "x"}}))
    assert list(errors) == ["params.n.default"]


def test_an_output_with_a_bad_path_is_not_also_unknown():
    errors = errors_of(
        pipeline(
            step("a", outputs={"parameters": {"n": "/tmp/n"}}),
            step("b", batch("{{steps.a.outputs.parameters.n}}"), depends="a"),
        )
    )
    assert list(errors) == ["steps.0.outputs.parameters.n"]


# --- foreach ---------------------------------------------------------------------------------


def test_foreach_over_a_literal_list_a_list_param_or_an_earlier_output():
    spec = validate(
        pipeline(
            step("a", outputs={"parameters": {"shards": "model_dir/shards.json"}}),
            step("b", batch("run {{item.path}} {{ item.n }}"), foreach=[{"path": "x", "n": 1}, {"path": "y", "n": 2}]),
            step("c", batch("run {{item}}"), foreach=" {{ params.items }} "),
            step("d", batch("run {{item}}"), foreach="{{steps.a.outputs.parameters.shards}}", depends="a"),
            step("e", batch("fan in {{steps.d.outputs.parameters.stdout}}"), depends="d"),
            params={"items": [1, 2], "required": {"type": "list"}},
        )
    )
    assert [s["foreach"] for s in spec["steps"]] == [
        None,
        [{"path": "x", "n": 1}, {"path": "y", "n": 2}],
        "{{ params.items }}",
        "{{steps.a.outputs.parameters.shards}}",
        None,
    ]


@pytest.mark.parametrize(
    ("foreach", "message"),
    [
        ("{{params.name}}", "{{params.name}}: a foreach needs a list, and 'name' is a string parameter"),
        ("{{params.nope}}", "{{params.nope}}: unknown parameter 'nope'"),
        ("{{steps.a.job_id}}", "{{steps.a.job_id}}: a foreach needs a list: an output parameter of an earlier step or a list parameter"),
        ("{{steps.a.outputs.artifacts.data}}", "{{steps.a.outputs.artifacts.data}}: a foreach needs a list: an output parameter of an earlier step or a list parameter"),
        ("{{steps.b.outputs.parameters.stdout}}", "{{steps.b.outputs.parameters.stdout}}: refers to step 'b', which this step does not depend on (add it to depends)"),
        ("{{run.id}}", "{{run.id}}: a foreach needs a list: an output parameter of an earlier step or a list parameter"),
    ],
)  # fmt: skip
def test_a_bad_foreach_reference(foreach, message):
    data = pipeline(
        step("a", outputs={"artifacts": {"data": "share_dir/data"}}),
        step("b"),
        step("c", batch("echo {{item}}"), depends="a", foreach=foreach),
        params={"name": "x"},
    )
    assert only_error(data) == ("steps.2.foreach", message)


def test_item_key_must_be_in_every_literal_item():
    assert only_error(pipeline(step("a", batch("{{item.path}}"), foreach=[{"path": "x"}, {"p": "y"}]))) == (
        "steps.0.job.command",
        "{{item.path}}: not every item of this step's foreach list is a mapping with the key 'path'",
    )
    assert only_error(pipeline(step("a", batch("{{item.path}}"), foreach=["x"])))[0] == "steps.0.job.command"


# --- the job, checked with sample values ----------------------------------------------------


def test_templated_values_are_checked_with_samples_of_their_types():
    params = {"n": {"type": "int"}, "gpus": 2, "pre": {"type": "string", "default": "j-12345678"}}
    job = {
        "framework": "pytorch",
        "command": "x",
        "roles": {"master": {}, "worker": {"replicas": "{{params.n}}", "gpu": "{{params.gpus}}"}},
        "pre_job": "{{params.pre}}",
        "timeout": "{{params.n}}",
    }
    spec = validate(pipeline(step("a", job), params=params))
    assert spec["steps"][0]["job"] == job


def test_a_sample_that_does_not_fit_is_reported_with_a_note():
    errors = errors_of(pipeline(step("a", batch("x", roles={"main": {"replicas": "{{params.n}}"}})), params={"n": "3"}))
    assert errors == {
        "steps.0.job.roles.main.replicas": [
            "must be a whole number, not a string; checked with sample values in place of its templates"
        ]
    }


def test_step_outputs_are_text_and_job_ids_fit_pre_job():
    data = pipeline(
        step("a"),
        step("b", {**BATCH, "pre_job": "{{steps.a.job_id}}", "env": {"N": "{{steps.a.outputs.parameters.stdout}}"}}, depends="a"),
    )  # fmt: skip
    validate(data)
    data["steps"][1]["job"]["roles"] = {"main": {"replicas": "{{steps.a.outputs.parameters.exit_code}}"}}
    assert only_error(data) == (
        "steps.1.job.roles.main.replicas",
        "must be a whole number, not a string; checked with sample values in place of its templates",
    )


def test_a_foreach_steps_outputs_are_lists():
    data = pipeline(
        step("a", foreach=[1, 2]),
        step("b", {**BATCH, "env": {"ALL": "{{steps.a.outputs.parameters.stdout}}"}}, depends="a"),
    )
    validate(data)  # in text, a list is its JSON
    data["steps"][1]["job"]["pre_job"] = "{{steps.a.job_id}}"
    path, message = only_error(data)  # where the job spec wants text, a list is its JSON: too long for a job id
    assert (path, message) == (
        "steps.1.job.pre_job",
        "must be at most 10 characters; checked with sample values in place of its templates",
    )


def test_item_samples_come_from_the_foreach():
    job = {**BATCH, "roles": {"main": {"replicas": "{{item.n}}", "gpu": "{{item}}"}}}
    validate(pipeline(step("a", {**BATCH, "roles": {"main": {"replicas": "{{item.n}}"}}}, foreach=[{"n": 2}])))
    validate(
        pipeline(
            step("a", {**BATCH, "roles": {"main": {"gpu": "{{item}}"}}}, foreach="{{params.g}}"), params={"g": [1]}
        )
    )
    path, _ = only_error(pipeline(step("a", job, foreach=[{"n": 2}])))
    assert path == "steps.0.job.roles.main.gpu"  # the item itself is a mapping, not a number of GPUs


def test_job_errors_outside_templates_have_no_note_and_job_spec_level_errors_land_on_the_job():
    errors = errors_of(pipeline(step("a", {"framework": "batch", "roles": {"main": {}}})))
    assert errors == {"steps.0.job.command": ["required (or give every role its own command)"]}


def test_every_problem_is_reported_at_once():
    data = {
        "name": "Bad",
        "description": 3,
        "params": {"lr": {"type": "double"}},
        "steps": [
            step("a", {**BATCH, "name": "x", "roles": {"main": {"replicas": 0}}}, depends="b", retry={"limit": 11}),
            step("b", depends="a"),
            step("c", batch("{{params.nope}}"), depends="zz", cache="false", outputs={"parameters": {"p": "/tmp"}}),
        ],
        "extra": True,
    }
    assert set(errors_of(data)) == {
        "name",
        "description",
        "extra",
        "params.lr.type",
        "steps.0.job.name",
        "steps.0.job.roles.main.replicas",
        "steps.0.retry.limit",
        "steps.0.depends",
        "steps.2.depends",
        "steps.2.cache",
        "steps.2.outputs.parameters.p",
        "steps.2.job.command",
    }


# --- text out --------------------------------------------------------------------------------


def test_to_text_reads_back_to_the_same_spec_and_leaves_defaults_out():
    spec = validate(parse(EXAMPLE))
    text = to_text(spec)
    assert validate(parse(text)) == spec
    assert "requires" not in text and "exit_code" not in text
    assert "dataset:\n    type: string\n" in text  # a param given at each run keeps its type
    assert "  - name: evaluate\n    depends: train.completed && prepare\n    when: " in text
    assert "    cache: true\n" in text
    smallest = validate(pipeline(step("a")))
    assert to_text(smallest) == (
        "name: p\nsteps:\n  - name: a\n    job:\n      framework: batch\n      command: echo hi\n"
        "      roles:\n        main: {}\n"
    )


def test_to_text_keeps_float_params_floats():
    spec = validate(pipeline(step("a"), params={"f": {"type": "float", "default": 1}, "g": 1e-05, "s": "1"}))
    assert validate(parse(to_text(spec))) == spec


def test_a_step_with_a_bad_name_is_not_also_unknown_where_it_is_named():
    long = "a" * 41
    errors = errors_of(pipeline(step(long), step("b", batch(f"{{{{steps.{long}.job_id}}}}"), depends=[long])))
    assert errors == {"steps.0.name": ["must be at most 40 characters"], "steps.1.depends.0": [
        "must be a step name, or a step name and .succeeded, .failed, .skipped or .completed"
    ]}  # fmt: skip
    errors = errors_of(pipeline(step("x" * 41), step("b", batch("{{steps.xx.job_id}}"), depends="a")))
    assert errors["steps.1.depends"] == ["unknown step 'a'"]
    assert errors["steps.1.job.command"] == ["{{steps.xx.job_id}}: unknown step 'xx'"]


def test_blank_depends_and_when_are_not_given():
    spec = validate(pipeline(step("a", depends="  ", when=" \n")))
    assert (spec["steps"][0]["depends"], spec["steps"][0]["when"]) == ("", "")
