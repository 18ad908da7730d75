"""The CLI's parts that need no portal: arena-style specs, the team line, error lines, the config, --help."""

from __future__ import annotations

import io
import json
import stat
import sys

import pytest
import yaml
from easyai_cli import config as cli_config
from easyai_cli import specs
from easyai_cli.client import error_lines
from easyai_cli.main import build_parser, main
from easyai_cli.output import table
from easyai_cli.progress import Progress
from easyai_cli.shell import START, _Output


@pytest.mark.parametrize(
    ("framework", "options", "roles"),
    [
        ("pytorch", {"workers": 1}, {"master": 1}),
        ("pytorch", {"workers": 4}, {"master": 1, "worker": 3}),
        ("tensorflow", {"workers": 2}, {"worker": 2}),
        ("tensorflow", {"workers": 2, "ps": 1, "chief": True}, {"chief": 1, "ps": 1, "worker": 2}),
        ("batch", {"workers": 3}, {"worker": 3}),
    ],
)
def test_workers_map_to_roles_the_arena_way(framework, options, roles):
    spec = specs.build(framework, name="x", command="python train.py", **options)
    assert {name: role["replicas"] for name, role in spec["roles"].items()} == roles


def test_resources_are_per_task_and_unset_options_are_left_to_the_portal():
    spec = specs.build(
        "pytorch", name="mnist", command="python train.py", workers=2, cpu="2", memory="4Gi", gpus=1, env={"A": "1"}
    )
    assert spec == {
        "name": "mnist",
        "framework": "pytorch",
        "command": "python train.py",
        "env": {"A": "1"},
        "roles": {
            "master": {"replicas": 1, "cpu": "2", "memory": "4Gi", "gpu": 1},
            "worker": {"replicas": 1, "cpu": "2", "memory": "4Gi", "gpu": 1},
        },
    }


def test_env_pairs_keep_everything_after_the_first_equals_sign():
    assert specs.parse_env(["A=1", "URL=http://x/?a=b", "EMPTY="]) == {"A": "1", "URL": "http://x/?a=b", "EMPTY": ""}
    with pytest.raises(ValueError, match="NAME=value"):
        specs.parse_env(["=1"])


@pytest.mark.parametrize(
    "text",
    [
        "name: a\nframework: batch\n",
        "# a comment first\nname: a\nroles:\n  worker: {replicas: 2}\n",
        "\ufeffname: a\n",
    ],
)
def test_the_team_is_added_as_one_line_to_a_spec_that_names_none(text):
    changed = specs.with_team(text, "vision")
    assert changed.startswith("team: vision\n")
    assert yaml.safe_load(changed) == {**yaml.safe_load(text.removeprefix("\ufeff")), "team": "vision"}


@pytest.mark.parametrize(
    "text",
    [
        "team: speech\nname: a\n",  # the spec's own team wins
        "team:\nname: a\n",  # a second team key would be a duplicate the portal refuses
        "{name: a, framework: batch}",  # flow style: a line before it changes nothing
        "--- \nname: a\n",
        "name: [unclosed",  # the portal names the problem
        "- a list\n",
    ],
)
def test_any_other_spec_is_sent_as_written(text):
    assert specs.with_team(text, "vision") == text


def test_a_json_spec_gets_the_team_as_a_field():
    assert json.loads(specs.with_team_json('{"name": "a", "team": null}', "vision")) == {"team": "vision", "name": "a"}
    assert specs.with_team_json('{"name": "a", "team": "speech"}', "vision") == '{"name": "a", "team": "speech"}'
    assert specs.with_team_json("[1]", "vision") == "[1]"


def test_the_progress_bar_draws_on_a_terminal_only():
    terminal = io.StringIO()
    bar = Progress("model.pt", 2048, stream=terminal, enabled=True)
    bar.add(1024)
    bar.finish()
    assert "model.pt [###############---------------]  50.0% 1.0 KiB/2.0 KiB" in terminal.getvalue()
    assert terminal.getvalue().endswith("\n")
    pipe = io.StringIO()
    quiet = Progress("model.pt", 2048, stream=pipe)  # a StringIO is not a terminal
    quiet.add(2048)
    quiet.finish()
    assert pipe.getvalue() == ""


def test_error_lines_name_each_field_path_and_leave_general_messages_bare():
    body = {
        "roles.worker.replicas": ["must be at least 1"],
        "name": ["required", "too long"],
        "non_field_errors": ["Wrong username or password."],
        "detail": "Not found.",
        "scheduling": {"tolerations": [{"effect": ["bad"]}]},
    }
    assert error_lines(body) == [
        "roles.worker.replicas: must be at least 1",
        "name: required",
        "name: too long",
        "Wrong username or password.",
        "Not found.",
        "scheduling.tolerations.0.effect: bad",
    ]


def test_the_config_is_owner_only_and_the_environment_overrides_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EASYAI_CONFIG_DIR", str(tmp_path / "cfg"))
    for name in ("EASYAI_URL", "EASYAI_TOKEN", "EASYAI_TEAM"):
        monkeypatch.delenv(name, raising=False)
    path = cli_config.save(cli_config.Config(url="https://a.example/", token="t1", username="u", team="vision"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = cli_config.load()
    assert (loaded.effective_url(), loaded.effective_token(), loaded.effective_team()) == (
        "https://a.example",
        "t1",
        "vision",
    )
    monkeypatch.setenv("EASYAI_URL", "http://b:8000")
    monkeypatch.setenv("EASYAI_TOKEN", "t2")
    monkeypatch.setenv("EASYAI_TEAM", "speech")
    assert (loaded.effective_url(), loaded.effective_token(), loaded.effective_team()) == (
        "http://b:8000",
        "t2",
        "speech",
    )
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_a_config_that_cannot_be_saved_says_where_and_leaves_nothing(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("EASYAI_CONFIG_DIR", str(blocker / "cfg"))
    with pytest.raises(cli_config.ConfigError) as error:
        cli_config.save(cli_config.Config(url="https://a.example/", token="t1"))
    assert str(error.value) == f"cannot save the config in {blocker / 'cfg' / 'config.yaml'}: Not a directory"
    (tmp_path / "cfg" / "config.yaml").mkdir(parents=True)  # the file's place is taken by a folder
    monkeypatch.setenv("EASYAI_CONFIG_DIR", str(tmp_path / "cfg"))
    with pytest.raises(cli_config.ConfigError, match="config.yaml: Is a directory$"):
        cli_config.save(cli_config.Config(url="https://a.example/", token="t1"))
    assert [p.name for p in (tmp_path / "cfg").iterdir()] == ["config.yaml"]  # no temporary file left behind


def test_a_broken_config_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EASYAI_CONFIG_DIR", str(tmp_path))
    (tmp_path / "config.yaml").write_text("url: [unclosed")
    assert main(["list"]) == 1
    assert capsys.readouterr().err.startswith(f"{tmp_path / 'config.yaml'} is not valid YAML")


def test_tables_align_columns_and_show_empty_cells_as_dashes():
    out = io.StringIO()
    table(["ID", "NAME", "NODE"], [("j-1", "a-long-name", ""), ("j-22", "b", "node-1")], out)
    assert out.getvalue().splitlines() == [
        "ID     NAME          NODE",
        "j-1    a-long-name   -",
        "j-22   b             node-1",
    ]


def test_exec_output_starts_after_the_start_marker_even_when_it_is_cut_between_frames():
    written: list[bytes] = []
    output = _Output(written.append, pipe=True)
    stream = b"$ stty -echo; ...\r\n\x1b[?2004h" + START + b"\r\nline 1\r\nline 2\r"
    for i in range(len(stream)):  # a byte at a time: the marker and the CRLF are cut everywhere
        output(stream[i : i + 1])
    output(b"\nend")
    output.close()
    assert b"".join(written) == b"line 1\nline 2\nend"


def _commands(parser, prefix=()):
    """Every (sub)command path of the parser."""
    for action in parser._actions:
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict):
            for name, sub in choices.items():
                yield (*prefix, name)
                yield from _commands(sub, (*prefix, name))


@pytest.mark.parametrize("command", sorted(set(_commands(build_parser()))), ids=" ".join)
def test_every_command_has_help_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "example:\n  easyai " in out


def test_no_command_prints_usage_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: easyai" in capsys.readouterr().err


def test_the_module_runs_as_a_script(monkeypatch):
    # `python -m easyai_cli.main` is what the console script and the tests' subprocesses run.
    monkeypatch.setattr(sys, "argv", ["easyai", "--version"])
    import runpy

    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("easyai_cli.main", run_name="__main__")
    assert exit_info.value.code == 0
