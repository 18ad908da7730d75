"""`easyai app` against a real portal (pytest-django's live server over HTTP).

Apps run on the fake backend's cluster: a run is a job the fake backend holds and never serves, so these tests
check what the CLI sends, what the portal recorded and what the CLI shows; apps/tests/test_apps_e2e.py serves
the examples for real on the local cluster.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from easyai_cli import config as cli_config
from easyai_cli import webapps
from easyai_cli.main import main

from apps import schedule as app_schedule
from apps.models import App
from conftest import token_key_for
from jobs.models import Job
from jobs.workers import sync as job_sync
from testing.web import fetch

EXAMPLES = Path(settings.BASE_DIR) / "examples" / "apps"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


class Result:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"

    def json(self):
        return json.loads(self.out)


def run(*argv: str, stdin: bytes = b"") -> Result:
    """main(argv) in this process, with its own stdin/stdout/stderr (none of them a terminal); argparse's
    usage errors come back as code 2 with their message, as the command would exit."""
    streams = [io.TextIOWrapper(io.BytesIO(data), encoding="utf-8") for data in (stdin, b"", b"")]
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        code = main(list(argv))
    except SystemExit as exited:
        code = exited.code
    finally:
        for stream in streams[1:]:
            stream.flush()
        sys.stdin, sys.stdout, sys.stderr = saved
    out, err = (stream.buffer.getvalue().decode() for stream in streams[1:])
    return Result(code, out, err)


@pytest.fixture
def logged_in(owner, live_server, tmp_path, fake_backend, monkeypatch) -> str:
    """The owner's token in the CLI's config; the portal's default cluster is the fake backend's."""
    for name in ("EASYAI_URL", "EASYAI_TOKEN", "EASYAI_TEAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EASYAI_CONFIG_DIR", str(tmp_path / "easyai-config"))
    monkeypatch.setenv("EASYAI_URL", live_server.url)
    cache.clear()
    key = token_key_for(owner)
    cli_config.save(cli_config.Config(url=live_server.url, token=key, username="owner"))
    return key


@pytest.fixture
def demo(tmp_path) -> Path:
    """The Streamlit example in a folder whose name is not an app name yet, with what a deploy leaves out."""
    folder = tmp_path / "My_Streamlit.Demo"
    shutil.copytree(EXAMPLES / "streamlit-demo", folder)
    (folder / "data").mkdir()
    (folder / "data" / "rows.csv").write_text("a,b\n1,2\n")
    for junk in (".git/HEAD", "__pycache__/app.cpython-311.pyc", ".venv/bin/python", "data/old.pyc"):
        (folder / junk).parent.mkdir(parents=True, exist_ok=True)
        (folder / junk).write_text("not part of the app")
    return folder


def fields_of(out: str) -> dict[str, str]:
    """The `Label: value` lines before a command's first table."""
    lines = out.split("\n\n", 1)[0].splitlines()
    return {label: value.strip() for label, value in (line.split(":", 1) for line in lines)}


def rows_of(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


# --- deploy ---------------------------------------------------------------------------------------------------


def test_deploying_a_folder_creates_the_app_then_publishes_revision_two(logged_in, demo, fake_backend):
    first = run("app", "deploy", str(demo), "--kind", "streamlit", "--env", "MODE=demo", "--idle-minutes", "15")

    assert first.code == 0, first
    app = App.objects.get()
    assert (app.team.slug, app.name, app.kind, app.revision.number) == ("vision", "my-streamlit-demo", "streamlit", 1)
    # The entry defaults to app.py; .git, __pycache__, .venv and *.pyc stayed home.
    assert app.revision.entry == "app.py"
    assert sorted(f["path"] for f in app.revision.files) == ["app.py", "data/rows.csv"]
    assert (app.env, app.idle_minutes) == ({"MODE": "demo"}, 15)
    assert first.out.splitlines() == [
        "app vision/my-streamlit-demo created (streamlit, entry app.py): revision 1 is deployed",
        f"  URL:   {app.url}",
        "  state: starting",
        "  follow it: easyai app get vision/my-streamlit-demo  (or easyai app logs my-streamlit-demo -f)",
    ]
    assert len(fake_backend.jobs) == 1  # its run went to the cluster

    (demo / "app.py").write_text((demo / "app.py").read_text() + "\n# revision two\n")
    second = run("app", "deploy", str(demo), "--env", "EXTRA=1", "-o", "json")

    assert second.code == 0, second
    shown = second.json()
    assert (shown["name"], shown["revision"], shown["entry"]) == ("my-streamlit-demo", 2, "app.py")
    assert [r["number"] for r in shown["revisions"]] == [2, 1]
    # --env adds to the variables the app had: the portal replaces the whole mapping, the CLI keeps the rest.
    assert shown["env"] == {"MODE": "demo", "EXTRA": "1"}
    app.refresh_from_db()
    assert app.revision.number == 2 and App.objects.count() == 1
    assert fake_backend.submits() >= 2  # revision 2 replaced revision 1's run


def test_an_app_made_since_the_deploy_looked_gets_a_new_revision(logged_in, demo, monkeypatch):
    assert run("app", "deploy", str(demo), "--kind", "streamlit", "--name", "dash").code == 0
    looked = []
    real = webapps._existing

    def first_misses(portal, team, name):  # as if another deploy made it between the look and the create
        looked.append(name)
        return None if len(looked) == 1 else real(portal, team, name)

    monkeypatch.setattr(webapps, "_existing", first_misses)
    result = run("app", "deploy", str(demo), "--kind", "streamlit", "--name", "dash")

    assert result.code == 0, result
    assert result.out.startswith("app vision/dash: revision 2 is deployed\n")
    assert looked == ["dash", "dash"] and App.objects.get().revision.number == 2


def test_list_and_get_show_the_apps_address_state_and_revisions(logged_in, demo, owner):
    assert run("app", "deploy", str(demo), "--kind", "streamlit", "--name", "dash", "--description", "Sales").code == 0
    app = App.objects.get()

    listed = run("app", "list")
    assert listed.code == 0, listed
    assert rows_of(listed.out) == [
        ["TEAM/NAME", "KIND", "STATE", "URL", "OWNER", "LAST", "REQUEST"],
        ["vision/dash", "streamlit", "starting", app.url, "owner", "never"],
    ]
    assert [a["name"] for a in run("app", "ls", "-A", "-o", "json").json()] == ["dash"]
    assert run("app", "list", "--team", "speech").err == "No apps in team speech.\n"

    got = run("app", "get", "dash")
    assert got.code == 0, got
    fields = fields_of(got.out)
    assert fields["App"] == "vision/dash"
    assert (fields["Kind"], fields["State"], fields["URL"]) == ("streamlit", "starting", app.url)
    assert (fields["Revision"], fields["Entry"], fields["Description"]) == ("1", "app.py", "Sales")
    assert fields["Job"] == f"{app.job.public_id} (task app-0)"
    assert fields["Visibility"] == "team"
    revisions = rows_of(got.out.split("Revisions:\n", 1)[1])
    assert revisions[0][:6] == ["REVISION", "KIND", "ENTRY", "COMMAND", "FILES", "SIZE"]
    assert revisions[1][:5] == ["1", "streamlit", "app.py", "-", "2"]

    assert run("app", "get", "vision/dash", "-o", "yaml").out.startswith("team: vision\nname: dash\n")
    missing = run("app", "get", "nope")
    assert (missing.code, missing.err) == (1, "app vision/nope: not found (or you may not see it)\n")


def test_a_secret_is_set_by_name_and_its_value_never_shown(logged_in, demo):
    assert run("app", "deploy", str(demo), "--kind", "streamlit", "--name", "dash").code == 0

    changed = run("app", "set", "dash", "--secret", "API_KEY=hunter2-top", "--secret", "DB_PASS=pw-42")
    assert changed.code == 0, changed
    assert App.objects.get().secrets == {"API_KEY": "hunter2-top", "DB_PASS": "pw-42"}
    got = run("app", "get", "dash")
    assert fields_of(got.out)["Secrets"] == "API_KEY, DB_PASS"
    as_json = run("app", "get", "dash", "-o", "json")
    assert as_json.json()["secrets"] == ["API_KEY", "DB_PASS"]
    for text in (changed.out, got.out, as_json.out):
        assert "hunter2-top" not in text and "pw-42" not in text

    assert run("app", "set", "dash", "--unset-secret", "API_KEY", "--env", "A=1", "--env", "B=2").code == 0
    assert run("app", "set", "dash", "--unset-env", "A").code == 0
    app = App.objects.get()
    assert (app.secrets, app.env) == ({"DB_PASS": "pw-42"}, {"B": "2"})

    nothing = run("app", "set", "dash")
    assert nothing.code == 2 and nothing.err.startswith("say what to change")


def test_bad_input_prints_the_portals_field_error_and_creates_nothing(logged_in, demo, fake_backend, settings):
    settings.EASYAI_ENDPOINTS_URL = "http://*.localhost:8001"  # where an app may be shared with named users
    bad_kind = run("app", "deploy", str(demo), "--kind", "flask")
    assert bad_kind.code == 1, bad_kind
    assert bad_kind.err.startswith("kind: ")

    no_entry = run("app", "deploy", str(demo), "--kind", "gradio", "--entry", "main.py")
    assert (no_entry.code, no_entry.err) == (1, "entry: There is no file main.py in the archive.\n")

    custom = run("app", "deploy", str(demo), "--kind", "custom")
    assert custom.code == 1 and custom.err.startswith("command: A custom app needs the command")

    bad_env = run("app", "deploy", str(demo), "--kind", "streamlit", "--env", "no-equals")
    assert (bad_env.code, bad_env.err) == (2, "--env 'no-equals': write it as NAME=value\n")
    no_kind = run("app", "deploy", str(demo))
    assert no_kind.code == 2 and "--kind" in no_kind.err

    assert App.objects.count() == 0 and Job.objects.count() == 0 and not fake_backend.jobs

    # An app that exists: a bad settings flag is refused after its revision was deployed, and says so.
    assert run("app", "deploy", str(demo), "--kind", "streamlit", "--name", "dash").code == 0
    refused = run("app", "deploy", str(demo), "--name", "dash", "--share", "nobody-here")
    assert refused.code == 1
    assert refused.err == (
        "revision 2 was deployed, but the portal refused the settings:\nshared_with: No such user: nobody-here.\n"
    )
    other_kind = run("app", "deploy", str(demo), "--name", "dash", "--kind", "gradio")
    assert other_kind.code == 2 and "is a streamlit app, not gradio" in other_kind.err
    assert App.objects.get().revision.number == 2


def test_a_link_in_the_folder_is_refused_before_anything_is_sent(logged_in, demo):
    (demo / "secrets.txt").symlink_to("/etc/passwd")

    result = run("app", "deploy", str(demo), "--kind", "streamlit")

    assert result.code == 2
    assert result.err.startswith(f"{demo / 'secrets.txt'}: a symbolic link;")
    assert App.objects.count() == 0
    missing = run("app", "deploy", str(demo / "nope"), "--kind", "streamlit")
    assert (missing.code, missing.err) == (2, f"{demo / 'nope'}: no such folder\n")


@pytest.mark.parametrize(
    ("folder", "name"), [("Streamlit_Demo", "streamlit-demo"), ("--x..y--", "x-y"), ("a" * 50, "a" * 40)]
)
def test_the_default_name_is_the_folders_made_dns_1123(tmp_path, folder, name):
    (tmp_path / folder).mkdir()
    assert webapps.default_name(tmp_path / folder) == name


# --- logs, actions, delete ------------------------------------------------------------------------------------


def test_logs_print_the_current_runs_task_log(logged_in, demo, fake_backend):
    assert run("app", "deploy", str(demo), "--kind", "streamlit", "--name", "dash").code == 0
    job = App.objects.get().job.public_id
    fake_backend.logs[(job, "app-0")] = b"You can now view your Streamlit app\nline 2\nline 3\n"

    assert run("app", "logs", "dash").out == "You can now view your Streamlit app\nline 2\nline 3\n"
    assert run("app", "logs", "vision/dash", "--tail", "1").out == "line 3\n"


def test_stop_start_restart_and_delete(logged_in, demo, fake_backend):
    assert run("app", "deploy", str(demo), "--kind", "streamlit", "--name", "dash").code == 0
    first_job = App.objects.get().job.public_id

    stopped = run("app", "stop", "dash")
    assert stopped.code == 0, stopped
    assert stopped.out.startswith("app vision/dash stopped") and "state stopped" in stopped.out
    again = run("app", "stop", "dash")
    assert (again.code, again.err) == (1, "The app is already stopped.\n")  # the portal's 409

    started = run("app", "start", "dash", "-o", "json")
    assert started.code == 0 and started.json()["state"] == "starting"
    assert started.json()["job"] != first_job
    restarted = run("app", "restart", "dash")
    assert restarted.code == 0 and App.objects.get().job.public_id != started.json()["job"]

    unconfirmed = run("app", "delete", "dash")  # standard input is no terminal: --yes is needed
    assert unconfirmed.code == 2 and "--yes" in unconfirmed.err
    assert App.objects.count() == 1
    deleted = run("app", "delete", "dash", "--yes")
    assert deleted.code == 0, deleted
    assert App.objects.count() == 0
    assert run("app", "delete", "dash", "--yes").err == "app vision/dash: not found (or you may not see it)\n"


def test_wait_stops_at_a_failed_run_with_its_message(logged_in, demo, fake_backend, monkeypatch):
    def sleep(_seconds):
        # What the clock would do meanwhile: the run failed, the sync pass saw it, the apps' scan said why.
        job = App.objects.get().job
        fake_backend.logs[(job.public_id, "app-0")] = (
            b"Traceback (most recent call last):\nModuleNotFoundError: pandas\n"
        )
        fake_backend.set_state(job.public_id, "failed", reason="error", message="exit code 1")
        job_sync.cluster_sync(job.cluster)
        app_schedule.scan()

    monkeypatch.setattr(webapps.time, "sleep", sleep)

    result = run("app", "deploy", str(demo), "--kind", "streamlit", "--wait")

    assert result.code == 1, result
    assert result.err.splitlines() == [
        "app vision/my-streamlit-demo is failed: exit code 1",
        "  Traceback (most recent call last):",
        "  ModuleNotFoundError: pandas",
        "see easyai app logs vision/my-streamlit-demo",
    ]


def test_another_teams_member_cannot_change_or_see_the_app(logged_in, demo, outsider, live_server, monkeypatch):
    assert run("app", "deploy", str(demo), "--kind", "streamlit", "--name", "dash").code == 0
    monkeypatch.setenv("EASYAI_TOKEN", token_key_for(outsider))

    for argv in (("get", "vision/dash"), ("stop", "vision/dash"), ("set", "vision/dash", "--cpu", "2")):
        result = run("app", *argv)
        assert (result.code, result.err) == (1, "app vision/dash: not found (or you may not see it)\n")
    assert App.objects.get().status == "active"


# --- for real -------------------------------------------------------------------------------------------------


def test_the_streamlit_example_deployed_for_real_answers_and_logs(
    origins, local_cluster, stop_all, owner, tmp_path, monkeypatch
):
    """The example deployed on the local cluster (a real Streamlit process), --wait until it answers its health
    check, opened at its URL, its log read and followed until `app stop` ends the run."""
    portal = f"http://{origins.portal}"
    monkeypatch.setenv("EASYAI_CONFIG_DIR", str(tmp_path / "easyai-config"))
    monkeypatch.setenv("EASYAI_URL", portal)
    monkeypatch.setenv("EASYAI_TOKEN", token_key_for(owner))
    monkeypatch.delenv("EASYAI_TEAM", raising=False)
    real_sleep = webapps.time.sleep

    def sleep(_seconds):  # the scheduler's sync pass, which records that the app answered
        job_sync.cluster_sync(local_cluster)
        real_sleep(0.3)

    monkeypatch.setattr(webapps.time, "sleep", sleep)

    deployed = run(
        "app", "deploy", str(EXAMPLES / "streamlit-demo"), "--kind", "streamlit", "--memory", "1Gi", "--wait",
        "--timeout", "120",
    )  # fmt: skip

    assert deployed.code == 0, deployed
    app = App.objects.get()
    assert app.name == "streamlit-demo" and app.url == f"http://localhost:{origins.port}/apps/vision/streamlit-demo/"
    assert deployed.out.splitlines()[1:] == [f"  URL:   {app.url}", "  state: running"]
    health = fetch(origins.port, "/apps/vision/streamlit-demo/_stcore/health", user=owner, Host=origins.endpoints)
    assert health[0] == 200

    assert "streamlit" in run("app", "logs", "streamlit-demo").out.lower()
    assert run("app", "stop", "streamlit-demo").code == 0
    followed = run("app", "logs", "streamlit-demo", "-f", "--tail", "0")
    assert followed.code == 0, followed
    assert followed.err.startswith("[app-0 stopped")
