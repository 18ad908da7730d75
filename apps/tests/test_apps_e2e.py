"""Apps end to end on the local backend, with real processes: published through the API, served through the
proxy on the endpoint origin, asleep when idle and woken by the next request; who may open what; bad input.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps import schedule, services
from apps.models import App, AppRevision, AppStatus
from apps.tests.conftest import CUSTOM_SERVER, get, put_example, put_files, wait_ready
from jobs.models import Job
from jobs.workers import sync as job_sync
from testing.wait import wait_until
from testing.web import fetch

pytestmark = pytest.mark.slow


BOUNDARY = "easyai-test-boundary"


def _multipart(fields: dict, archive: bytes) -> tuple[str, bytes]:
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="archive"; filename="app.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n".encode() + archive + b"\r\n"
    )
    return f"multipart/form-data; boundary={BOUNDARY}", b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def _api(port: int, method: str, path: str, user, body: dict | None = None):
    status, headers, raw = fetch(
        port,
        path,
        method=method,
        user=user,
        body=json.dumps(body).encode() if body is not None else None,
        Content_Type="application/json",
    )
    return status, (json.loads(raw) if raw and raw[:1] in b"[{" else raw)


def test_a_streamlit_app_is_published_served_sleeps_and_wakes(origins, local_cluster, stop_all, people, team):
    owner, mate = people["owner"], people["mate"]
    port = origins.port
    folder = put_example(owner, "streamlit-demo", "apps/iris")
    status, answer = _api(
        port, "POST", "/api/v1/apps/", owner,
        {"team": team.slug, "name": "iris", "kind": "streamlit", "entry": "app.py", "source": folder,
         "cpu": "1", "memory": "1Gi", "idle_minutes": 5},
    )  # fmt: skip
    assert status == 201, answer
    assert answer["state"] == "starting" and answer["revision"] == 1
    assert answer["url"] == f"http://localhost:{port}/apps/{team.slug}/iris/"
    app = wait_ready(App.objects.get(team=team, name="iris"), local_cluster)
    assert app.startup_seconds is not None and app.startup_seconds > 0

    # Through the proxy, under its base path: the page, its health route and its static files.
    status, headers, body = get(port, f"/apps/{team.slug}/iris/", mate)
    assert status == 200 and b"<title>Streamlit</title>" in body or b"streamlit" in body.lower()
    assert get(port, f"/apps/{team.slug}/iris/_stcore/health", mate)[0] == 200
    # The copy runs, not the workspace: editing the folder changes nothing until the next publish.
    revision = AppRevision.objects.get(app=app, number=1)
    kept = Path(settings.EASYAI_STORAGE_ROOT) / "apps" / team.slug / "iris" / "1" / "app.py"
    assert kept.read_bytes() == (Path(settings.BASE_DIR) / "examples/apps/streamlit-demo/app.py").read_bytes()
    assert revision.files[0]["path"] == "app.py" and len(revision.digest) == 64

    # Idle past its time: asleep, its run stopped.
    schedule.scan(now=timezone.now() + timedelta(minutes=6))
    app.refresh_from_db()
    assert app.status == AppStatus.SLEEPING and app.state == "sleeping"
    first_job = app.job
    assert first_job.state == "stopped" and first_job.reason == "idle"

    # An open tab's own traffic (a health ping, an XHR) does not wake it: only opening it does.
    status, _headers, body = get(port, f"/apps/{team.slug}/iris/_stcore/health", None, Sec_Fetch_Mode="cors")
    assert status == 404  # anonymous, of a team app
    status, _headers, body = get(port, f"/apps/{team.slug}/iris/_stcore/health", mate, Sec_Fetch_Mode="cors")
    assert status == 503 and b"asleep" in body
    app.refresh_from_db()
    assert app.status == AppStatus.SLEEPING and app.job == first_job

    # The next request wakes it: 503 with Retry-After meanwhile, then the app.
    started = time.monotonic()
    status, headers, _body = get(port, f"/apps/{team.slug}/iris/_stcore/health", mate)
    assert status == 503 and headers["Retry-After"] == "1"
    app.refresh_from_db()
    assert app.status == AppStatus.ACTIVE and app.job != first_job

    def woke():
        job_sync.cluster_sync(local_cluster)
        return get(port, f"/apps/{team.slug}/iris/_stcore/health", mate)[0] == 200

    wait_until(woke, 120, "the app to wake", every=0.3)
    assert time.monotonic() - started < 120
    # A second wave of requests while it starts made no second run.
    assert Job.objects.filter(framework="app", team=team).count() == 2

    # A browser asleep-page: the "starting" page that reloads itself.
    schedule.scan(now=timezone.now() + timedelta(minutes=6))
    status, headers, body = get(port, f"/apps/{team.slug}/iris/", mate, Accept="text/html")
    assert status == 503 and b'http-equiv="refresh"' in body and b"easyai-app-starting" in body

    # Stopped by its owner: a visit does not wake it.
    app.refresh_from_db()
    services.app_stop(user=owner, app=app)
    status, _headers, body = get(port, f"/apps/{team.slug}/iris/", mate)
    assert status == 503 and b"stopped" in body
    app.refresh_from_db()
    assert app.status == AppStatus.STOPPED and app.job.state not in ("queued", "pending", "running")


def test_who_may_open_a_team_a_shared_and_a_public_app(wildcard, local_cluster, stop_all, people, team, make_user):
    owner, mate, outsider, admin = people["owner"], people["mate"], people["outsider"], people["team_admin"]
    friend = make_user("friend")
    port = wildcard.port
    put_files(owner, "apps/hello", {"serve.py": CUSTOM_SERVER})
    app = services.app_deploy(
        user=owner, team=team, name="hello", kind="custom", command="python serve.py", source="apps/hello",
        cpu="500m", memory="256Mi",
    )  # fmt: skip
    wait_ready(app, local_cluster)
    path = f"/apps/{team.slug}/hello/x"
    host = app.url.split("/")[2]

    def at(user, **headers):
        return fetch(port, path, user=user, Host=host, **headers)

    # A team app: its team opens it; an outsider and an anonymous script get 404; an anonymous browser is
    # sent to sign in through the portal.
    for user in (owner, mate, admin):
        assert at(user)[0] == 200
    assert at(outsider)[0] == 404
    assert at(None)[0] == 404
    status, headers, _body = at(None, Accept="text/html")
    assert status == 302 and headers["Location"].startswith(f"http://127.0.0.1:{port}/apps/open/?next=")
    # The portal's half of that sign-in: an outsider gets 404 there too.
    from django.test import Client

    client = Client()
    client.force_login(outsider)
    assert client.get("/apps/open/", {"next": path}).status_code == 404
    client.force_login(mate)
    answer = client.get("/apps/open/", {"next": path + "?a=1&_easyai_ticket=old", "_easyai_state": "s" * 32})
    assert answer.status_code == 302 and answer["Location"].count("_easyai_ticket=") == 1
    assert answer["Location"].startswith(f"http://{host}{path}?a=1&_easyai_ticket=")
    # Not a way elsewhere: only paths of an app.
    assert client.get("/apps/open/", {"next": "https://evil.example/apps/a/b/"}).status_code == 404
    assert client.get("/apps/open/", {"next": "/admin/"}).status_code == 404

    # Shared with a named user: they open it, another outsider still cannot; a team-mate still can.
    services.app_update(user=owner, app=app, visibility="shared", shared_with=[friend.username])
    time.sleep(5.1)  # past the proxy's reuse of permission answers
    assert at(friend)[0] == 200
    assert at(outsider)[0] == 404
    assert at(mate)[0] == 200
    # Public: anyone, anonymous included.
    services.app_update(user=admin, app=app, visibility="public")
    assert at(None)[0] == 200
    assert at(outsider)[0] == 200
    # Back to the team: the friend's access ends within seconds.
    services.app_update(user=owner, app=app, visibility="team")
    time.sleep(5.1)
    assert at(friend)[0] == 404
    assert at(None)[0] == 404

    # A team-mate may not change it; an outsider does not see it at all.
    assert _api(port, "POST", f"/api/v1/apps/{team.slug}/hello/stop/", mate)[0] == 403
    assert _api(port, "GET", f"/api/v1/apps/{team.slug}/hello/", outsider)[0] == 404
    assert _api(port, "POST", f"/api/v1/apps/{team.slug}/hello/stop/", outsider)[0] == 404
    app.refresh_from_db()
    assert app.status == AppStatus.ACTIVE


def test_on_one_shared_endpoint_host_an_app_stays_with_its_team(origins, local_cluster, stop_all, people, team):
    owner = people["owner"]
    put_files(owner, "apps/hello", {"serve.py": CUSTOM_SERVER})
    app = services.app_deploy(
        user=owner, team=team, name="hello", kind="custom", command="python serve.py", source="apps/hello",
        cpu="500m", memory="256Mi",
    )  # fmt: skip
    # On the one host all endpoints share, an app's scripts would run beside its visitors' notebooks.
    for visibility, shared in (("public", None), ("shared", [people["outsider"].username])):
        with pytest.raises(ValidationError) as refused:
            services.app_update(user=owner, app=app, visibility=visibility, shared_with=shared)
        assert "wildcard" in refused.value.message_dict["visibility"][0]
    app.refresh_from_db()
    assert app.visibility == "team"


def test_a_custom_app_gets_its_base_path_port_environment_and_secrets(origins, local_cluster, stop_all, people, team):
    owner = people["owner"]
    port = origins.port
    put_files(owner, "apps/hello", {"serve.py": CUSTOM_SERVER})
    status, answer = _api(
        port, "POST", "/api/v1/apps/", owner,
        {"team": team.slug, "name": "hello", "kind": "custom", "source": "apps/hello",
         "command": "echo port=$PORT base=$EASYAI_APP_BASE_PATH && python serve.py",
         "cpu": "500m", "memory": "256Mi", "env": {"GREETING": "hi"}, "secrets": {"API_KEY": "s3cr3t-value"}},
    )  # fmt: skip
    assert status == 201, answer
    assert answer["secrets"] == ["API_KEY"] and "s3cr3t-value" not in json.dumps(answer)
    app = wait_ready(App.objects.get(team=team, name="hello"), local_cluster)
    status, _headers, body = get(port, f"/apps/{team.slug}/hello/some/page?q=1", owner)
    seen = json.loads(body)
    assert status == 200 and seen["path"] == "/some/page?q=1" and seen["greeting"] == "hi"
    assert seen["secret"] == "s3cr3t-value"  # in the task's environment...
    assert "s3cr3t-value" not in json.dumps(app.job.spec)  # ...never in its job's spec
    assert seen["app_dir"].endswith(f"apps/{team.slug}/hello/1")
    # Its command's own words may use them, and a command of several parts runs whole.
    logged = services.log_tail(app.job)
    assert f"base=/apps/{team.slug}/hello" in logged and "port=" in logged and "port= " not in logged, logged
    # The API never gives the value back; a listing neither.
    status, listing = _api(port, "GET", f"/api/v1/apps/?team={team.slug}", owner)
    assert status == 200 and "s3cr3t-value" not in json.dumps(listing)

    # A new secret value restarts the run with it.
    status, answer = _api(port, "PATCH", f"/api/v1/apps/{team.slug}/hello/", owner, {"secrets": {"API_KEY": "v2"}})
    assert status == 200, answer
    app = wait_ready(App.objects.get(pk=app.pk), local_cluster)
    assert json.loads(get(port, f"/apps/{team.slug}/hello/", owner)[2])["secret"] == "v2"

    # A new revision from an archive: revision 2 runs, revision 1's files stay.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("serve.py", CUSTOM_SERVER.replace('"greeting"', '"greeting2"'))
    buffer.seek(0)
    revision = services.app_publish(user=owner, app=app, archive=buffer)
    assert revision.number == 2 and revision.source == "archive"
    app = wait_ready(App.objects.get(pk=app.pk), local_cluster)
    assert "greeting2" in json.loads(get(port, f"/apps/{team.slug}/hello/", owner)[2])
    assert (Path(settings.EASYAI_STORAGE_ROOT) / "apps" / team.slug / "hello" / "1" / "serve.py").exists()

    services.app_delete(user=owner, app=app)
    assert not App.objects.filter(pk=app.pk).exists()
    assert not (Path(settings.EASYAI_STORAGE_ROOT) / "apps" / team.slug / "hello").exists()
    assert get(port, f"/apps/{team.slug}/hello/", owner)[0] == 404


def test_bad_input_is_refused_naming_the_field_and_leaves_nothing(origins, local_cluster, stop_all, people, team):
    owner = people["owner"]
    port = origins.port
    put_files(owner, "apps/demo", {"app.py": "import streamlit as st\nst.write('hi')\n"})
    jobs_before = Job.objects.count()

    def refused(body: dict, field: str) -> None:
        status, answer = _api(port, "POST", "/api/v1/apps/", owner, {"team": team.slug, **body})
        assert status == 400 and field in answer, (body, status, answer)

    base = {"name": "demo", "kind": "streamlit", "entry": "app.py", "source": "apps/demo", "cpu": "1", "memory": "1Gi"}
    refused({**base, "entry": "main.py"}, "entry")  # not in the folder
    refused({**base, "entry": "../secrets.py"}, "entry")
    refused({**base, "source": "apps/nothing-here"}, "source")
    refused({**base, "source": "../../var"}, "source")
    refused({**base, "kind": "flask"}, "kind")
    refused({**base, "name": "Not_A_Name"}, "name")
    refused({**base, "kind": "custom", "entry": ""}, "command")  # a custom app needs its command
    refused({**base, "env": {"EASYAI_JOB_ID": "x"}}, "env")
    refused({**base, "gpu": 10_000}, "gpu")
    refused({**base, "visibility": "shared"}, "visibility")  # on one shared endpoint host (see below)
    assert not App.objects.exists() and Job.objects.count() == jobs_before
    assert not (Path(settings.EASYAI_STORAGE_ROOT) / "apps").exists() or not any(
        (Path(settings.EASYAI_STORAGE_ROOT) / "apps").rglob("*.py")
    )

    # A link in the folder is refused: nothing is followed; nor one on the way to it that leads out.
    workspace = Path(settings.EASYAI_STORAGE_ROOT) / "notebook" / owner.username / "apps" / "demo"
    (workspace / "secrets").symlink_to("/etc/passwd")
    refused(base, "source")
    (workspace / "secrets").unlink()
    outside = Path(settings.EASYAI_STORAGE_ROOT) / "elsewhere" / "sub"
    outside.mkdir(parents=True)
    (outside / "app.py").write_text("print('not yours')\n")
    (workspace.parent / "door").symlink_to(outside.parent)
    refused({**base, "source": "apps/door/sub"}, "source")
    # An archive it cannot unpack whole: a file and a folder of one name.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "x")
        archive.writestr("app.py/inner.py", "y")
    status, headers, raw = fetch(
        port, "/api/v1/apps/", method="POST", user=owner, body=_multipart(
            {"team": team.slug, "name": "demo", "kind": "streamlit", "entry": "app.py"}, buffer.getvalue()
        )[1], Content_Type=_multipart({}, b"")[0],
    )  # fmt: skip
    assert status == 400 and b"archive" in raw, raw

    # A name taken.
    status, answer = _api(port, "POST", "/api/v1/apps/", owner, {"team": team.slug, **base})
    assert status == 201, answer
    refused(base, "name")
    assert App.objects.count() == 1 and AppRevision.objects.count() == 1
    # A change that is not what it says: refused naming it, nothing changed.
    status, answer = _api(port, "PATCH", f"/api/v1/apps/{team.slug}/demo/", owner, {"unset_secrets": [{}]})
    assert status == 400 and "unset_secrets" in answer, answer
    # Labels of apps' own hosts never meet, whatever "--" their names hold.
    from apps.models import app_host_label

    assert app_host_label("z", "x--y") != app_host_label("y--z", "x")
    assert app_host_label("vision", "demo") == "app--demo--vision"


def test_an_app_that_never_becomes_healthy_fails_with_its_log(origins, local_cluster, stop_all, people, team, settings):
    owner = people["owner"]
    settings.EASYAI_APP_START_TIMEOUT = 1.0
    put_files(owner, "apps/mute", {"serve.py": "import time\nprint('loading the model...', flush=True)\ntime.sleep(600)\n"})
    app = services.app_deploy(
        user=owner, team=team, name="mute", kind="custom", command="python serve.py", source="apps/mute",
        cpu="500m", memory="256Mi",
    )  # fmt: skip

    def running():
        job_sync.cluster_sync(local_cluster)
        app.job.refresh_from_db()
        return app.job.state == "running"

    wait_until(running, 60, "the run to start")
    time.sleep(1.5)
    job_sync.cluster_sync(local_cluster)
    schedule.scan()
    app = App.objects.select_related("job").prefetch_related("job__tasks").get(pk=app.pk)
    assert app.state == "failed", (app.state, app.job.state, app.job.reason)
    assert "did not answer its health check within 1 seconds" in app.message
    assert "loading the model..." in app.message  # the last lines of its log
    wait_until(lambda: Job.objects.get(pk=app.job.pk).is_final, 30, "the run to end")

    # One whose command exits: failed too, with its log.
    put_files(owner, "apps/crash", {"app.py": "raise SystemExit('no model file found')\n"})
    crash = services.app_deploy(
        user=owner, team=team, name="crash", kind="custom", command="python app.py", source="apps/crash",
        cpu="500m", memory="256Mi",
    )  # fmt: skip

    def ended():
        job_sync.cluster_sync(local_cluster)
        schedule.scan()
        fresh = App.objects.select_related("job").get(pk=crash.pk)
        return fresh if fresh.message else None

    crash = wait_until(ended, 60, "the crash to be recorded")
    assert crash.state == "failed" and "no model file found" in crash.message


def test_under_a_wildcard_origin_an_app_answers_at_a_host_of_its_own(wildcard, local_cluster, stop_all, people, team):
    owner = people["owner"]
    port = wildcard.port
    put_files(owner, "apps/hello", {"serve.py": CUSTOM_SERVER})
    app = services.app_deploy(
        user=owner, team=team, name="hello", kind="custom", command="python serve.py", source="apps/hello",
        cpu="500m", memory="256Mi",
    )  # fmt: skip
    app = wait_ready(app, local_cluster)
    assert app.url == f"http://app--hello--{team.slug}.localhost:{port}/apps/{team.slug}/hello/"
    own_host = f"app--hello--{team.slug}.localhost:{port}"
    assert fetch(port, f"/apps/{team.slug}/hello/", user=owner, Host=own_host)[0] == 200
    # Not at another app's host, nor at an endpoint's: its credential cookie is scoped to its own.
    assert fetch(port, f"/apps/{team.slug}/hello/", user=owner, Host=f"app--other--{team.slug}.localhost:{port}")[0] == 404
    assert fetch(port, f"/apps/{team.slug}/hello/", user=owner, Host=f"j-aaaaaaaa--main-0--web.localhost:{port}")[0] == 404


def test_the_clock_enqueues_the_apps_scan_once_per_period(db, settings):
    from django.core.cache import cache

    from easyai_site.management.commands.scheduler import periodic_work

    cache.delete("easyai:apps-scan")
    work = dict(periodic_work())
    assert work["apps"]({}) is True  # the scan is enqueued (run inline here)
    assert work["apps"]({}) is False  # not again within its period
