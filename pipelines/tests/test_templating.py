"""Templates in a step's job: finding, classifying and rendering ``{{ ref }}``. No database."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.spec.templating import TEMPLATE, RenderError, classify, references, render, render_job

VALUES: dict[str, Any] = {
    "params.n": 3,
    "params.lr": 0.01,
    "params.flag": True,
    "params.off": False,
    "params.items": ["a", 1],
    "params.conf": {"k": "v"},
    "params.name": "bert",
    "schedule.time": "",
    "steps.a.job_id": "j-12345678",
    "item": {"path": "x"},
}


def lookup(ref: str) -> Any:
    return VALUES[ref]


@pytest.mark.parametrize(
    ("ref", "kind"),
    [
        ("params.lr", ("param", "lr")),
        ("params.LR", ("param", "LR")),  # validation says "unknown parameter", not "not a reference"
        ("steps.train.job_id", ("step", "train", "job_id")),
        ("steps.train.outputs.parameters.accuracy", ("step", "train", "parameters", "accuracy")),
        ("steps.train.outputs.parameters.stdout", ("step", "train", "parameters", "stdout")),
        ("steps.my-step.outputs.artifacts.ckpt", ("step", "my-step", "artifacts", "ckpt")),
        ("item", ("item", None)),
        ("item.path", ("item", "path")),
        ("schedule.time", ("schedule", "time")),
        ("run.id", ("run", "id")),
    ],
)
def test_classify_names_what_a_ref_refers_to(ref, kind):
    assert classify(ref) == kind


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "params",
        "params.",
        "param.lr",
        "params.lr.x",
        "steps.a",
        "steps.a.outputs",
        "steps.a.outputs.parameters",
        "steps.a.outputs.files.x",
        "steps.a.job_id.x",
        "item.",
        "item.a.b",
        "schedule.date",
        "run.name",
        "lr",
        "params.l r",
        None,
    ],
)
def test_classify_refuses_anything_else(ref):
    with pytest.raises(ValueError, match="is not a reference"):
        classify(ref)


def test_template_matches_refs_with_or_without_spaces_and_nothing_else():
    assert [m[1] for m in TEMPLATE.finditer("{{params.a}} {{ params.b }} {{  item  }}")] == [
        "params.a",
        "params.b",
        "item",
    ]
    # Other double braces stay text: Go templates, shell, two words, an empty pair.
    assert not TEMPLATE.search("{{ .Values.x }} ${{x y}} {{}} {{ 1x }} {params.a}")


def test_references_walks_strings_lists_and_mapping_values_but_not_keys():
    value = {
        "command": "train --lr {{params.lr}} --n {{ params.n }}",
        "roles": {"worker": {"replicas": "{{params.n}}", "{{params.key}}": 1}},
        "args": ["{{item}}", 3, None, ["{{steps.a.job_id}}"]],
    }
    assert references(value) == {"params.lr", "params.n", "item", "steps.a.job_id"}
    assert references("no templates") == set()
    assert references(5) == set()


def test_a_string_that_is_one_template_keeps_the_value_type():
    assert render("{{params.n}}", lookup) == 3
    assert render("{{ params.lr }}", lookup) == 0.01
    assert render("{{params.flag}}", lookup) is True
    assert render("{{params.items}}", lookup) == ["a", 1]
    assert render("{{item}}", lookup) == {"path": "x"}


def test_a_template_inside_text_is_substituted_as_text():
    assert render("n={{params.n}} lr={{params.lr}}", lookup) == "n=3 lr=0.01"
    assert render("{{params.flag}}/{{params.off}}", lookup) == "true/false"
    assert render("items: {{params.items}}", lookup) == 'items: ["a",1]'
    assert render("conf {{params.conf}}", lookup) == 'conf {"k":"v"}'
    assert render("at {{schedule.time}}.", lookup) == "at ."
    assert render(" {{params.n}}", lookup) == " 3"  # not exactly one template: text


def test_render_walks_nested_values_and_leaves_keys_and_other_values_alone():
    job = {
        "command": "train {{params.name}}",
        "roles": {"worker": {"replicas": "{{params.n}}", "gpu": 1}},
        "env": {"{{params.name}}": "{{steps.a.job_id}}"},
        "args": ["{{params.n}}", None, True],
    }
    assert render(job, lookup) == {
        "command": "train bert",
        "roles": {"worker": {"replicas": 3, "gpu": 1}},
        "env": {"{{params.name}}": "j-12345678"},
        "args": [3, None, True],
    }
    assert job["roles"]["worker"]["replicas"] == "{{params.n}}"  # the input is not changed


def test_render_leaves_strings_without_templates_as_they_are():
    assert render("echo {{ .Values.x }} ${{x y}}", lookup) == "echo {{ .Values.x }} ${{x y}}"


def test_a_missing_value_is_a_render_error_naming_the_ref():
    with pytest.raises(RenderError) as caught:
        render({"a": ["x {{params.missing}} y"]}, lookup)
    assert caught.value.ref == "params.missing"
    assert "params.missing" in str(caught.value)
    with pytest.raises(RenderError):
        render("{{params.missing}}", lookup)


def test_render_job_gives_text_where_the_job_spec_wants_text():
    job = {
        "command": "{{params.n}}",
        "env": {"VERBOSE": "{{params.flag}}", "ITEMS": "{{params.items}}", "AT": "{{schedule.time}}"},
        "roles": {
            "worker": {
                "replicas": "{{params.n}}",
                "gpu": "{{params.n}}",
                "cpu": "{{params.lr}}",
                "command": ["train", "{{params.n}}", "{{params.conf}}"],
                "env": {"N": "{{params.n}}"},
            }
        },
        "volumes": "{{params.items}}",
        "scheduling": {"gang": "{{params.off}}", "queue": "{{params.n}}"},
        "max_retries": "{{params.n}}",
        "pre_job": "{{steps.a.job_id}}",
        "experiment": "{{params.none}}",
    }
    values = {**VALUES, "params.none": None}
    assert render_job(job, values.__getitem__) == {
        "command": "3",
        "env": {"VERBOSE": "true", "ITEMS": '["a",1]', "AT": ""},
        "roles": {
            "worker": {
                "replicas": 3,
                "gpu": 3,
                "cpu": 0.01,
                "command": ["train", "3", '{"k":"v"}'],
                "env": {"N": "3"},
            }
        },
        "volumes": ["a", 1],
        "scheduling": {"gang": False, "queue": "3"},
        "max_retries": 3,
        "pre_job": "j-12345678",
        "experiment": "",
    }


def test_render_job_keeps_lists_and_mappings_where_the_job_spec_takes_them():
    values = {"params.cmd": ["python", "t.py"], "params.env": {"A": "1"}, "params.role": {"replicas": 2}}
    job = {"command": "{{params.cmd}}", "env": "{{params.env}}", "roles": {"worker": "{{params.role}}"}}
    assert render_job(job, values.__getitem__) == {
        "command": ["python", "t.py"],
        "env": {"A": "1"},
        "roles": {"worker": {"replicas": 2}},
    }
    with pytest.raises(RenderError):
        render_job({"command": "x {{params.missing}}"}, values.__getitem__)
