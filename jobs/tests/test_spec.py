"""The job spec: parsing, validation, normalization, YAML and the simple form. No database."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
import yaml

from jobs import forms as spec_forms
from jobs import spec as job_spec
from jobs.forms import form_errors, from_form, is_simple, to_form
from jobs.spec import (
    FRAMEWORK_ROLES,
    SpecError,
    parse,
    role_resources,
    to_yaml,
    totals,
    validate,
)
from jobs.tests.spec_cases import BAD_SPECS, GOOD_SPECS, good_spec, role, spec

GiB = 2**30


def errors_of(data: Any) -> dict[str, list[str]]:
    with pytest.raises(SpecError) as caught:
        validate(data)
    return caught.value.errors


# --- bad specs --------------------------------------------------------------------------------


def test_the_shared_list_holds_many_distinct_bad_specs():
    assert len(BAD_SPECS) >= 40
    assert len({json.dumps(s, sort_keys=True, default=repr) for s, _ in BAD_SPECS}) == len(BAD_SPECS)


@pytest.mark.parametrize(("data", "path"), BAD_SPECS, ids=[f"{i}-{path}" for i, (_, path) in enumerate(BAD_SPECS)])
def test_a_bad_spec_names_exactly_its_path(data, path):
    errors = errors_of(data)
    assert list(errors) == [path]
    assert errors[path] and all(isinstance(m, str) and m for m in errors[path])


def test_a_spec_with_several_problems_reports_every_one():
    data = {
        "name": "Bad Name",
        "framework": "pytorch",
        "image": "img",
        "env": {"RANK": "1", "DEBUG": True},
        "roles": {"worker": {"replicas": 0, "cpu": "1Gi", "colour": "red"}},
        "scheduling": {"tolerations": [{"key": "gpu", "effect": "Never"}, {"operator": "Exists"}]},
        "timeout": "soon",
        "extra": 1,
    }
    assert set(errors_of(data)) == {
        "name",
        "env.RANK",
        "env.DEBUG",
        "roles.worker.replicas",
        "roles.worker.cpu",
        "roles.worker.colour",
        "roles.master",
        "command",
        "scheduling.tolerations.0.effect",
        "timeout",
        "extra",
    }


@pytest.mark.parametrize("data", [None, [], 1, 1.5, True, "name: x", b"{}", ["name", "framework"], {"a", "b"}])
def test_anything_but_a_mapping_is_one_error_on_the_spec(data):
    errors = errors_of(data)
    assert list(errors) == ["spec"]
    assert "mapping" in errors["spec"][0]


def test_an_empty_mapping_asks_for_every_required_field():
    assert set(errors_of({})) == {"name", "framework", "roles", "command"}


def test_unknown_fields_suggest_the_near_one():
    errors = errors_of(role("worker", spec(framwork="pytorch"), replica=2))
    assert "did you mean 'framework'" in errors["framwork"][0]
    assert "did you mean 'replicas'" in errors["roles.worker.replica"][0]


def test_reserved_variable_error_names_the_key():
    errors = errors_of(spec(env={"MASTER_ADDR": "10.0.0.1", "TF_CONFIG": "{}", "OK": "1"}))
    assert set(errors) == {"env.MASTER_ADDR", "env.TF_CONFIG"}
    assert "platform" in errors["env.MASTER_ADDR"][0]


def test_an_env_number_says_to_quote_it():
    assert "quotes" in errors_of(spec(env={"LR": 0.1}))["env.LR"][0]


def test_memory_in_milli_suggests_mebibytes():
    assert "Mi" in errors_of(role("worker", memory="512m"))["roles.worker.memory"][0]


def test_role_names_not_of_the_framework_list_the_right_ones():
    assert "master, worker" in errors_of(role("chief"))["roles.chief"][0]


def test_total_tasks_are_capped_but_1000_is_fine():
    ok = spec(framework="batch", roles={"a": {"replicas": 600}, "b": {"replicas": 400}})
    assert sum(r["replicas"] for r in validate(ok)["roles"].values()) == 1000
    assert "1001" in errors_of(role("c", ok))["roles"][0]


# --- good specs ---------------------------------------------------------------------------


def test_a_pytorch_spec_normalizes_to_the_documented_shape():
    data = {
        "name": "mnist",
        "framework": "pytorch",
        "image": "pytorch/pytorch:2.3",
        "command": "python train.py --epochs 3",
        "env": {"LR": "0.1"},
        "roles": {"worker": {"replicas": 3, "cpu": 0.5, "memory": "1e9", "gpu": 1}, "master": {"cpu": 2}},
        "timeout": 3600,
    }
    default_role = {"command": [], "image": "", "env": {}}
    assert validate(data) == {
        "name": "mnist",
        "team": None,
        "experiment": None,
        "cluster": None,
        "framework": "pytorch",
        "image": "pytorch/pytorch:2.3",
        "command": ["/bin/sh", "-c", "python train.py --epochs 3"],
        "working_dir": "",
        "env": {"LR": "0.1"},
        "roles": {
            "master": {"replicas": 1, "cpu": "2", "memory": "2Gi", "gpu": 0, **default_role},
            "worker": {"replicas": 3, "cpu": "0.5", "memory": "1e9", "gpu": 1, **default_role},
        },
        "priority": "normal",
        "scheduling": {"node_selector": {}, "tolerations": [], "queue": "", "gang": True, "oversell": 1.0},
        "pre_job": None,
        "volumes": [],
        "timeout": "3600s",
        "max_retries": 0,
        "ports": {},
    }


def test_roles_come_out_in_the_frameworks_order():
    assert list(validate(good_spec())["roles"]) == ["master", "worker"]
    assert list(validate(GOOD_SPECS["tensorflow"])["roles"]) == ["chief", "ps", "worker", "evaluator"]


@pytest.mark.parametrize("framework", sorted(FRAMEWORK_ROLES))
def test_every_framework_has_a_good_spec_that_normalizes(framework):
    data = GOOD_SPECS[framework]
    normalized = validate(data)
    assert normalized["framework"] == framework
    assert list(normalized) == list(job_spec.FIELDS)
    assert set(normalized["roles"]) == set(data["roles"])
    allowed = FRAMEWORK_ROLES[framework]
    for name, body in normalized["roles"].items():
        assert allowed is None or name in allowed
        assert set(body) == {"replicas", "cpu", "memory", "gpu", "command", "image", "env"}
        assert body["replicas"] == data["roles"][name].get("replicas", 1)
        assert body["cpu"] == str(data["roles"][name].get("cpu", "1"))
        assert body["memory"] == data["roles"][name].get("memory", "2Gi")
        assert body["gpu"] == data["roles"][name].get("gpu", 0)
    # What is stored validates to itself, so a rerun of a stored spec works.
    assert validate(copy.deepcopy(normalized)) == normalized


def test_a_list_command_stays_a_list_and_a_string_runs_in_the_shell():
    assert validate(spec(command=["python", "train.py"]))["command"] == ["python", "train.py"]
    assert validate(spec(command="echo $HOME"))["command"] == ["/bin/sh", "-c", "echo $HOME"]


def test_when_every_role_has_a_command_the_top_one_may_be_left_out():
    data = spec(command=None, roles={"master": {"command": "python m.py"}, "worker": {"command": ["python", "w.py"]}})
    normalized = validate(data)
    assert normalized["command"] == []
    assert normalized["roles"]["worker"]["command"] == ["python", "w.py"]


def test_null_or_empty_optional_fields_mean_not_given():
    data = spec(team=None, experiment="", image="", env=None, scheduling={}, volumes=[], timeout="", ports=None)
    data["roles"]["worker"] = None  # "worker:" with nothing under it
    normalized = validate(data)
    assert normalized["team"] is None and normalized["timeout"] is None and normalized["image"] == ""
    assert normalized["roles"]["worker"]["replicas"] == 1


def test_everything_optional_is_kept():
    data = spec(
        team="vision",
        experiment="lr sweep",
        cluster="gpu_a",
        working_dir="/workspace/personal/mnist",
        priority="high",
        pre_job="j-abc12345",
        volumes=["imagenet", "models"],
        timeout="1h30m",
        max_retries=3,
        ports={"tensorboard": 6006, "http": 8080},
        scheduling={
            "node_selector": {"gpu-type": "a100", "example.com/pool": "train"},
            "tolerations": [
                {"key": "gpu", "operator": "Exists"},
                {"key": "team", "value": "vision", "effect": "NoSchedule"},
            ],
            "queue": "vision",
            "gang": False,
            "oversell": 2,
        },
    )
    normalized = validate(data)
    for field in ("team", "experiment", "cluster", "working_dir", "priority", "pre_job", "volumes", "timeout"):
        assert normalized[field] == data[field]
    assert normalized["ports"] == {"tensorboard": 6006, "http": 8080}
    assert normalized["scheduling"] == {
        "node_selector": {"gpu-type": "a100", "example.com/pool": "train"},
        "tolerations": [
            {"key": "gpu", "operator": "Exists", "value": "", "effect": ""},
            {"key": "team", "operator": "Equal", "value": "vision", "effect": "NoSchedule"},
        ],
        "queue": "vision",
        "gang": False,
        "oversell": 2.0,
    }


def test_validate_does_not_change_its_input():
    data = good_spec()
    before = copy.deepcopy(data)
    validate(data)
    assert data == before


# --- resources ----------------------------------------------------------------------------


def test_role_resources_merge_the_top_level_and_the_role_wins():
    data = spec(
        image="base:1",
        env={"A": "top", "B": "top"},
        roles={
            "master": {"cpu": "500m", "memory": "1.5Gi", "image": "master:1", "env": {"B": "master"}},
            "worker": {"replicas": 4, "cpu": 2, "memory": "4Gi", "gpu": 1, "command": ["python", "w.py"]},
        },
    )
    resources = role_resources(validate(data))
    assert resources["master"] == {
        "replicas": 1,
        "cpu_milli": 500,
        "memory_bytes": 1536 * 2**20,
        "gpu": 0,
        "command": ["/bin/sh", "-c", "python train.py"],
        "image": "master:1",
        "env": {"A": "top", "B": "master"},
    }
    assert resources["worker"] == {
        "replicas": 4,
        "cpu_milli": 2000,
        "memory_bytes": 4 * GiB,
        "gpu": 1,
        "command": ["python", "w.py"],
        "image": "base:1",
        "env": {"A": "top", "B": "top"},
    }
    assert totals(validate(data)) == (500 + 4 * 2000, 1536 * 2**20 + 16 * GiB, 4)


def test_totals_of_defaults():
    assert totals(validate(good_spec())) == (3000, 6 * GiB, 0)


# --- text -----------------------------------------------------------------------------------

YAML_TEXT = """\
name: mnist
framework: pytorch
image: pytorch/pytorch:2.3
command: python train.py
env:
  LR: "0.1"
roles:
  master: {}
  worker:
    replicas: 2
    cpu: 0.5
    memory: 4Gi
scheduling:
  tolerations:
    - key: gpu
      operator: Exists
"""


def test_yaml_and_json_parse_the_same():
    from_yaml = parse(YAML_TEXT)
    as_json = json.dumps(from_yaml)
    assert parse(as_json, "application/json") == from_yaml
    assert parse(as_json) == from_yaml  # YAML reads JSON too
    assert parse(as_json.encode(), "application/json; charset=utf-8") == from_yaml
    assert validate(parse(as_json, "application/json")) == validate(from_yaml)


@pytest.mark.parametrize(
    "content_type", [None, "", "application/yaml", "application/x-yaml", "text/yaml", "text/plain"]
)
def test_yaml_content_types(content_type):
    assert parse(YAML_TEXT, content_type)["name"] == "mnist"


def test_json_content_type_reads_json_only():
    errors = pytest.raises(SpecError, parse, YAML_TEXT, "application/json").value.errors
    assert "not valid JSON" in errors["spec"][0] and "line 1" in errors["spec"][0]


def test_an_unknown_content_type_is_refused():
    assert "content type" in pytest.raises(SpecError, parse, "{}", "application/xml").value.errors["spec"][0]


def test_bytes_with_a_byte_order_mark_parse():
    assert parse("\ufeffname: x\n".encode())["name"] == "x"
    assert parse("\ufeff{}".encode(), "application/json") == {}


@pytest.mark.parametrize(
    ("text", "content_type", "words"),
    [
        ("name: [mnist\nframework: x\n", None, "line"),
        ("name: a\n  bad: indent\n", None, "line 2"),
        ("name: a\nname: b\n", None, "found the key 'name' twice (line 2"),
        ('{"name": "a", "name": "b"}', "application/json", "found the key 'name' twice"),
        ('{"name": "a",}', "application/json", "line 1"),
        ('{"oversell": NaN}', "application/json", "NaN"),
        ("name: a\n---\nname: b\n", None, "single document"),
        ("- name: a\n", None, "not a list"),
        ("just words", None, "not a string"),
        ("", None, "empty"),
        ("# only a comment\n", None, "empty"),
        ("name: !!python/object:os.system x\n", None, "not valid YAML"),
        ("b: !!binary 'QQ'\n", None, "base64"),
        ("max_retries: " + "9" * 5000 + "\n", None, "not valid YAML"),
        ('{"max_retries": ' + "9" * 5000 + "}", "application/json", "not valid JSON"),
        ("[" * 100_000, "application/json", "nested too deeply"),
        ("a: " + "[" * 100_000, None, "nesting depth"),
        ("when: 2024-13-45\n", None, "not valid YAML"),
    ],
)
def test_unreadable_text_is_one_error_on_the_spec(text, content_type, words):
    errors = pytest.raises(SpecError, parse, text, content_type).value.errors
    assert list(errors) == ["spec"]
    assert words in errors["spec"][0]


def test_text_that_is_not_utf8_or_too_large_is_refused():
    assert "UTF-8" in pytest.raises(SpecError, parse, b"name: \xff\xfe").value.errors["spec"][0]
    big = "name: x\n" + "# padding\n" * 200_000
    assert "too large" in pytest.raises(SpecError, parse, big).value.errors["spec"][0]


def test_recursive_and_exponential_aliases_are_only_errors():
    recursive = "command: &c [*c]\nenv: &e {X: *e}\nroles: &r {worker: *r}\nscheduling: &s {tolerations: [*s]}\n"
    with pytest.raises(SpecError) as refused:
        parse(recursive)
    [(path, [message])] = refused.value.errors.items()
    assert path.count(".") >= 31 and message == "is nested too deeply: at most 32 levels"
    laughs, previous = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n', "a"
    for anchor in "bcdefghi":  # 9**9 strings if anything expanded them
        laughs += f"{anchor}: &{anchor} [{', '.join([f'*{previous}'] * 9)}]\n"
        previous = anchor
    laughs += "name: x\nframework: batch\ncommand: *i\nvolumes: *i\nroles: {w: {command: *i}}\n"
    errors = errors_of(parse(laughs))
    assert "command.8" in errors and "roles.w.command.8" in errors and len(errors) < 100


def test_yaml_booleans_in_env_are_caught():
    # YAML 1.1 reads a bare yes/on as true: the classic "Norway problem".
    errors = errors_of(parse(YAML_TEXT.replace('LR: "0.1"', "DEBUG: yes")))
    assert list(errors) == ["env.DEBUG"]


@pytest.mark.parametrize(("data", "path"), BAD_SPECS, ids=[f"{i}-{path}" for i, (_, path) in enumerate(BAD_SPECS)])
def test_a_bad_spec_names_the_same_path_when_sent_as_text(data, path):
    # As the API receives them: JSON, or YAML where JSON cannot say it (a number as a key).
    if json.loads(json.dumps(data)) == data:
        parsed = parse(json.dumps(data), "application/json")
    else:
        parsed = parse(yaml.safe_dump(data), "application/yaml")
    assert list(errors_of(parsed)) == [path]


def test_an_infinite_or_nan_oversell_is_refused():
    for text in ("oversell: .inf", "oversell: .nan", "oversell: -.inf"):
        assert list(errors_of(spec(scheduling=parse(text)))) == ["scheduling.oversell"]


# --- YAML out --------------------------------------------------------------------------------


def test_to_yaml_is_block_style_in_a_human_order():
    text = to_yaml(validate(parse(YAML_TEXT)))
    keys = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith(" ")]
    assert keys == ["name", "framework", "image", "command", "env", "roles", "priority", "scheduling"]
    assert "{" not in text and "[" not in text
    assert "command: python train.py\n" in text
    assert "LR: '0.1'" in text  # quoted, so it reads back as a string


@pytest.mark.parametrize("framework", sorted(FRAMEWORK_ROLES))
def test_to_yaml_round_trips(framework):
    normalized = validate(GOOD_SPECS[framework])
    assert validate(parse(to_yaml(normalized))) == normalized


def test_to_yaml_round_trips_everything_given():
    data = spec(
        team="vision",
        experiment="sweep: lr=0.1 # not a comment",
        cluster="local",
        command=["python", "-c", "print('yes')", "--flag=no", "", "123", "null", "1e3"],
        working_dir="/work",
        env={"YES": "yes", "NUM": "007", "EMPTY": "", "MULTI": "line 1\nline 2\n", "TRAIL": "x  \n  y "},
        priority="low",
        pre_job="j-abc12345",
        volumes=["data"],
        timeout=90,
        max_retries=2,
        ports={"http": 8080},
        scheduling={
            "node_selector": {"true": "false"},
            "tolerations": [{"operator": "Exists"}, {"key": "k", "value": "1"}],
            "gang": False,
            "oversell": 1.5,
        },
        roles={
            "master": {"cpu": "100m", "memory": 1073741824, "command": "set -e\ncd /work\npython m.py\n"},
            "worker": {"replicas": 2, "cpu": 0.25, "image": "w:2", "env": {"ON": "on"}},
        },
    )
    normalized = validate(data)
    text = to_yaml(normalized)
    assert validate(parse(text)) == normalized
    assert "|" in text  # a multi-line script reads as a block


def test_to_yaml_round_trips_random_strings():
    rng = random.Random(7)
    alphabet = "ab #:-'\"\n\t\\{}[]&*!|>%@`,?yesnoul0.1e\u00e9\u4e2d"
    for _ in range(300):
        words = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(3)]
        data = spec(env={"V": words[0]}, command=["x" + words[1], words[2]], experiment=f"e{words[1]}e")
        try:
            normalized = validate(data)
        except SpecError:
            continue  # e.g. an experiment ending in a space
        assert validate(parse(to_yaml(normalized))) == normalized


# --- the simple form ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("framework", "expected"),
    [
        ("pytorch", {"master": 1, "worker": 3}),
        ("tensorflow", {"chief": 1, "worker": 3}),
        ("mpi", {"launcher": 1, "worker": 3}),
        ("xgboost", {"master": 1, "worker": 3}),
        ("paddle", {"master": 1, "worker": 3}),
        ("batch", {"worker": 3}),
    ],
)
def test_form_workers_map_onto_the_frameworks_roles(framework, expected):
    fields = {"name": "mnist", "framework": framework, "command": "python train.py", "workers": "3"}
    fields |= {"cpu": "2", "memory": "4Gi", "gpu": "1"}
    normalized = validate(from_form(fields))
    assert {name: r["replicas"] for name, r in normalized["roles"].items()} == expected
    assert all((r["cpu"], r["memory"], r["gpu"]) == ("2", "4Gi", 1) for r in normalized["roles"].values())


def test_form_defaults_give_a_single_task_where_that_can_run():
    base = {"name": "a", "command": "true"}
    assert list(validate(from_form(base | {"framework": "pytorch"}))["roles"]) == ["master"]
    assert list(validate(from_form(base | {"framework": "mpi"}))["roles"]) == ["launcher", "worker"]
    assert list(validate(from_form(base | {"framework": "batch"}))["roles"]) == ["worker"]


def test_form_round_trips_a_simple_spec():
    fields = {
        "name": "mnist",
        "team": "vision",
        "experiment": "sweep",
        "framework": "tensorflow",
        "image": "tf:2",
        "command": "python train.py\necho done",
        "working_dir": "/work",
        "workers": "2",
        "cpu": "500m",
        "memory": "1.5Gi",
        "gpu": "1",
        "priority": "high",
        "queue": "vision",
        "timeout": "2h",
        "max_retries": "1",
        "pre_job": "j-abc12345",
        "volumes": "data, models",
        "env": "LR=0.1\nNAME=a=b\n",
    }
    normalized = validate(from_form(fields))
    assert normalized["env"] == {"LR": "0.1", "NAME": "a=b"}
    assert normalized["volumes"] == ["data", "models"]
    assert is_simple(normalized)
    back = to_form(normalized)
    assert set(back) == set(spec_forms.FORM_FIELDS)
    assert validate(from_form(back)) == normalized
    assert back["workers"] == "2" and back["env"] == "LR=0.1\nNAME=a=b\n"


@pytest.mark.parametrize(
    "data",
    [
        GOOD_SPECS["tensorflow"],  # ps and evaluator
        GOOD_SPECS["batch"],  # named roles
        role("worker", cpu="4"),  # different resources
        spec(command=["python", "train.py"]),
        spec(ports={"http": 80}),
        spec(scheduling={"gang": False}),
    ],
)
def test_specs_the_form_cannot_show_need_the_yaml_editor(data):
    assert not is_simple(validate(data))
    with pytest.raises(ValueError, match="YAML editor"):
        to_form(data)


def test_form_problems_land_on_form_fields():
    fields = {"name": "Bad", "framework": "mpi", "command": "x", "workers": "none", "cpu": "1Gi", "env": "NOVALUE"}
    errors = form_errors(errors_of(from_form(fields)))
    assert set(errors) == {"name", "workers", "cpu", "env"}
    assert errors["cpu"] == [errors["cpu"][0]]  # the same problem on two roles is said once
    assert errors["env"][0].startswith("NOVALUE: ")
    assert form_errors({"scheduling.gang": ["x"]}) == {"__all__": ["scheduling.gang: x"]}


# --- garbage never breaks it ----------------------------------------------------------------------


def _garbage(rng: random.Random, depth: int = 0) -> Any:
    leaves = [None, True, False, 0, -1, 1, 2**70, 1.5, float("nan"), float("inf")]
    leaves += ["", "x", "1Gi", "500m", "\x00", "j-abc12345"]
    kind = rng.random()
    if depth > 3 or kind < 0.5:
        return rng.choice(leaves + [b"bytes", ("tuple",), {1, 2}, object()])
    keys = list(job_spec.FIELDS + job_spec.ROLE_FIELDS + job_spec.SCHEDULING_FIELDS + job_spec.TOLERATION_FIELDS)
    keys += ["master", "worker", "launcher", "chief", "x", 1, None, ("t",)]
    if kind < 0.75:
        return {rng.choice(keys): _garbage(rng, depth + 1) for _ in range(rng.randint(0, 6))}
    return [_garbage(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def _mutate(rng: random.Random, value: Any) -> Any:
    """The value with one random place replaced by garbage."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        return {**value, key: _mutate(rng, value[key])}
    if isinstance(value, list) and value and rng.random() < 0.8:
        i = rng.randrange(len(value))
        return [*value[:i], _mutate(rng, value[i]), *value[i + 1 :]]
    return _garbage(rng)


def _only_spec_errors(data: Any) -> None:
    try:
        normalized = validate(data)
    except SpecError as exc:
        assert exc.errors and all(isinstance(p, str) and m for p, m in exc.errors.items())
        assert str(exc)
        return
    # Whatever passes is a real spec: it round-trips, and its numbers can be computed.
    assert validate(parse(to_yaml(normalized))) == normalized
    totals(normalized)


def test_random_nested_garbage_only_ever_raises_spec_error():
    rng = random.Random(20240601)
    for _ in range(500):
        _only_spec_errors(_garbage(rng))
        _only_spec_errors({k: _garbage(rng) for k in rng.sample(job_spec.FIELDS, rng.randint(1, 8))})


def test_good_specs_with_one_random_mutation_only_ever_raise_spec_error():
    rng = random.Random(99)
    full = json.loads(json.dumps(validate(parse(YAML_TEXT))))
    for _ in range(500):
        _only_spec_errors(_mutate(rng, rng.choice([full, *GOOD_SPECS.values()])))


def test_random_text_only_ever_raises_spec_error():
    rng = random.Random(5)
    pieces = [
        "name",
        "roles",
        "1",
        ":",
        " ",
        "  ",
        "\n",
        "\t",
        "- ",
        "{",
        "}",
        "[",
        "]",
        "&a",
        "*a",
        "!!",
        "'",
        '"',
        "#",
    ]
    for _ in range(500):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        for content_type in (None, "application/json"):
            try:
                _only_spec_errors(parse(text, content_type))
            except SpecError as exc:
                assert list(exc.errors) == ["spec"]
