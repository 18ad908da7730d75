"""Settings at start: wrong values stop the portal with a message naming the variable; the site settings file;
static files without DEBUG."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client, override_settings

from easyai_site import settings as site_settings

BASE_DIR = Path(settings.BASE_DIR)
VENDORED_CSS = "vendor/bootstrap/bootstrap.min.css"


def start(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    """Python code run in a fresh interpreter from the project root, with the settings read from `env`."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("EASYAI_") and key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}
    }
    environment.update(DJANGO_SETTINGS_MODULE="easyai_site.settings", EASYAI_VAR_DIR=str(tmp_path / "var"), **env)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=environment, capture_output=True, text=True, timeout=120
    )


SETUP = "import django; django.setup()"


def last_line(done: subprocess.CompletedProcess) -> str:
    return done.stderr.strip().splitlines()[-1]


# --- wrong values fail at start ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_URL": "http://127.0.0.1:6379/0"}, "REDIS_URL='http://127.0.0.1:6379/0' is not a Redis URL"),
        (
            {"EASYAI_AUTH_BACKENDS": "no_such_ldap.backend.LDAPBackend"},
            "EASYAI_AUTH_BACKENDS: 'no_such_ldap.backend.LDAPBackend' cannot be used: no module 'no_such_ldap.backend' is installed",
        ),
        ({"EASYAI_LANGUAGE": "fr"}, "EASYAI_LANGUAGE='fr' is not a language the portal ships (use one of en, zh-hans)"),
    ],
    ids=["redis", "auth-backends", "language"],
)
def test_a_wrong_setting_stops_the_start_with_a_message_naming_the_variable(tmp_path, env, message):
    done = start(tmp_path, SETUP, **env)
    assert done.returncode != 0
    assert last_line(done).startswith(f"django.core.exceptions.ImproperlyConfigured: {message}"), done.stderr


def test_the_same_start_succeeds_with_good_values(tmp_path):
    done = start(
        tmp_path,
        SETUP + "; from django.conf import settings as s; print(s.LANGUAGE_CODE, s.AUTHENTICATION_BACKENDS[0])",
        REDIS_URL="rediss://:secret@redis.example.com:6380/2",
        EASYAI_AUTH_BACKENDS="django.contrib.auth.backends.RemoteUserBackend",
        EASYAI_LANGUAGE="zh-hans",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["zh-hans", "django.contrib.auth.backends.RemoteUserBackend"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost:6379", "is not a Redis URL"),
        ("redis://", "is not a Redis URL"),
        ("redis://:pw@host:port/0", "has a bad port"),
        ("redis://host:6379/zero", "the database after the host must be a number"),
    ],
)
def test_redis_url_must_be_redis_or_rediss_with_a_host(monkeypatch, url, message):
    monkeypatch.setenv("REDIS_URL", url)
    with pytest.raises(ImproperlyConfigured, match=f"^REDIS_URL=.*{message}") as error:
        site_settings.redis_url("REDIS_URL")
    assert "pw" not in str(error.value)  # a password in the URL is never printed


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ModelBackend", "'ModelBackend' is not a dotted path"),
        ("django.contrib.auth.backends.ModelBackend,no_such_package.Backend", "no module 'no_such_package'"),
        ("django.contrib.auth.no_such_module.Backend", "no module 'django.contrib.auth.no_such_module'"),
    ],
)
def test_auth_backends_must_name_installed_modules(monkeypatch, value, message):
    monkeypatch.setenv("EASYAI_AUTH_BACKENDS", value)
    with pytest.raises(ImproperlyConfigured, match=f"^EASYAI_AUTH_BACKENDS: .*{message}"):
        site_settings.env_class_paths("EASYAI_AUTH_BACKENDS", [])


def test_a_misspelt_backend_class_fails_the_checks_that_serve_runs_first(tmp_path):
    done = start(
        tmp_path,
        "from django.core.management import execute_from_command_line as run; run(['manage.py', 'check'])",
        EASYAI_AUTH_BACKENDS="django.contrib.auth.backends.ModelBackendd",
    )
    assert done.returncode != 0
    assert "EASYAI_AUTH_BACKENDS" in last_line(done)
    assert 'does not define a "ModelBackendd" attribute/class' in last_line(done)


# --- the site settings file ----------------------------------------------------------------------

SETTINGS_FILE = """\
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.RemoteUserBackend", *AUTHENTICATION_BACKENDS]
INSTALLED_APPS += ["django.contrib.humanize"]
AUTH_LDAP_SERVER_URI = "ldap://ldap.example.com"
OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET")
EASYAI_SIGNUP_ENABLED = False
helper = "lowercase names are the file's own"
"""

REPORT = (
    SETUP + "; import json, easyai_site.urls; from django.conf import settings as s; "
    "print(json.dumps({name: getattr(s, name, None) for name in ("
    "'AUTHENTICATION_BACKENDS', 'AUTH_LDAP_SERVER_URI', 'OIDC_RP_CLIENT_SECRET', 'EASYAI_SIGNUP_ENABLED', 'helper')}"
    " | {'humanize': 'django.contrib.humanize' in s.INSTALLED_APPS}))"
)


def test_the_settings_file_adds_and_overrides_settings_after_the_environment(tmp_path):
    settings_file = tmp_path / "site.py"
    settings_file.write_text(SETTINGS_FILE)
    secret = tmp_path / "oidc-secret"
    secret.write_text("s3cr3t\n")

    done = start(
        tmp_path,
        REPORT,
        EASYAI_SETTINGS_FILE=str(settings_file),
        OIDC_RP_CLIENT_SECRET_FILE=str(secret),
        EASYAI_SIGNUP_ENABLED="1",
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "AUTHENTICATION_BACKENDS": [
            "django.contrib.auth.backends.RemoteUserBackend",
            "django.contrib.auth.backends.ModelBackend",
            "guardian.backends.ObjectPermissionBackend",
        ],
        "AUTH_LDAP_SERVER_URI": "ldap://ldap.example.com",
        "OIDC_RP_CLIENT_SECRET": "s3cr3t",
        "EASYAI_SIGNUP_ENABLED": False,
        "helper": None,
        "humanize": True,
    }


def test_a_settings_file_that_cannot_be_read_stops_the_start(tmp_path):
    done = start(tmp_path, SETUP, EASYAI_SETTINGS_FILE=str(tmp_path / "missing.py"))
    assert done.returncode != 0
    assert last_line(done).startswith(
        f"django.core.exceptions.ImproperlyConfigured: EASYAI_SETTINGS_FILE='{tmp_path / 'missing.py'}' cannot be read"
    )


def test_an_error_in_the_settings_file_points_at_its_line(tmp_path):
    settings_file = tmp_path / "site.py"
    settings_file.write_text("DEBUG = False\nAUTH_LDAP_BIND_DN = undefined_name\n")
    done = start(tmp_path, SETUP, EASYAI_SETTINGS_FILE=str(settings_file))
    assert done.returncode != 0
    assert f'File "{settings_file}", line 2' in done.stderr
    assert last_line(done) == "NameError: name 'undefined_name' is not defined"


# --- static files without DEBUG ------------------------------------------------------------------


@pytest.mark.django_db
def test_without_debug_collected_static_files_are_served(tmp_path):
    with override_settings(DEBUG=False, STATIC_ROOT=tmp_path / "static"):
        (tmp_path / "static").mkdir()
        assert Client().get(f"/static/{VENDORED_CSS}").status_code == 404  # nothing collected yet
        call_command("collectstatic", interactive=False, verbosity=0)
        response = Client().get(f"/static/{VENDORED_CSS}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert b"".join(response.streaming_content) == (BASE_DIR / "static" / VENDORED_CSS).read_bytes()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_serve_in_production_collects_static_files_and_daphne_serves_them(tmp_path):
    port = _free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("EASYAI_") and key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    environment.update(EASYAI_DEBUG="0", SECRET_KEY="x" * 50, EASYAI_VAR_DIR=str(tmp_path / "var"))
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--no-worker", "--port", str(port)],
        cwd=BASE_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/{VENDORED_CSS}", timeout=5) as response:
                    status, body = response.status, response.read()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, "the portal did not answer within 60 s"
                time.sleep(0.3)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            output = server.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            output = server.communicate()[0]

    assert status == 200
    assert body == (BASE_DIR / "static" / VENDORED_CSS).read_bytes()
    assert (tmp_path / "var" / "static" / VENDORED_CSS).is_file()
    assert f"Static files collected into {tmp_path / 'var' / 'static'}" in output
    assert server.returncode == 0, output


# --- database drivers are an extra ---------------------------------------------------------------


def test_mysql_without_its_driver_stops_the_start_with_one_line_naming_what_to_install(tmp_path):
    # A module that fails to import stands where mysqlclient would be, as on a machine without it.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "MySQLdb.py").write_text("raise ImportError('No module named MySQLdb')\n")
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("EASYAI_") and key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}
    }
    environment.update(
        DATABASE_URL="mysql://easyai:pw@127.0.0.1:3306/easyai",
        EASYAI_VAR_DIR=str(tmp_path / "var"),
        PYTHONPATH=str(shadow),
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=environment, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "easyai: DATABASE_URL names MySQL but its driver is not installed: "
        "apt-get install libmariadb-dev pkg-config, then pip install -r requirements-mysql.txt"
    ]
