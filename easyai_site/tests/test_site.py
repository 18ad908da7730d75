"""Site-wide checks: the API schema, the settings readers, the docs page, the first-run bootstrap."""

import io
import stat

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from easyai_site import settings as site_settings


def test_the_api_schema_generates_without_a_warning(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(target))
    text = target.read_text()
    assert "/api/v1/jobs/" in text and "/api/v1/teams/" in text


@pytest.mark.django_db
def test_api_docs_page_is_served_without_a_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert "cdn" not in response.content.decode().lower()


@pytest.mark.parametrize(
    ("reader", "name", "raw", "message"),
    [
        (site_settings.env_bool, "EASYAI_X", "maybe", "is not a boolean"),
        (site_settings.env_int, "EASYAI_X", "ten", "is not an integer"),
        (site_settings.env_float, "EASYAI_X", "fast", "is not a number"),
    ],
)
def test_a_wrong_setting_fails_at_start_naming_the_variable(monkeypatch, reader, name, raw, message):
    monkeypatch.setenv(name, raw)
    with pytest.raises(ImproperlyConfigured, match=f"{name}=.*{message}"):
        reader(name, 1)


def test_database_url_is_read_for_mysql_and_refused_for_unknown_schemes():
    db = site_settings.database_from_url("mysql://u:p%40ss@db.example:3307/easyai?test_name=ci_easyai")
    assert (db["ENGINE"], db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "django.db.backends.mysql",
        "easyai",
        "u",
        "p@ss",
        "db.example",
        "3307",
    )
    assert db["OPTIONS"]["charset"] == "utf8mb4" and "STRICT_TRANS_TABLES" in db["OPTIONS"]["init_command"]
    assert db["TEST"]["NAME"] == "ci_easyai" and "test_name" not in db["OPTIONS"]
    with pytest.raises(ImproperlyConfigured, match="scheme 'postgres'"):
        site_settings.database_from_url("postgres://x/y")
    with pytest.raises(ImproperlyConfigured, match="names no database"):
        site_settings.database_from_url("mysql://root@localhost/")


def test_a_secret_can_come_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "key"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("EASYAI_SECRET_FILE", str(secret))
    assert site_settings.env_str("EASYAI_SECRET") == "from-a-file"
    monkeypatch.setenv("EASYAI_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        site_settings.env_str("EASYAI_SECRET")


def _run_python(argv: list[str], env: dict[str, str]) -> str:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, *argv], env=env, cwd=site_settings.BASE_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _bare_environment(var_dir) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECRET_KEY", "EASYAI_DEBUG", "EASYAI_STATIC"))}
    env.update(EASYAI_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="easyai_site.settings")
    return env


SHOW = "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"


def test_without_a_secret_key_one_is_made_once_readable_by_the_portal_only_and_kept(tmp_path):
    env = _bare_environment(tmp_path / "var")

    def started() -> str:  # the portal's entry point (manage.py) prepares var/ before the settings read it
        return _run_python(["manage.py", "shell", "-c", SHOW], env).splitlines()[-1]

    first = started()
    debug, key = first.split(" ", 1)
    assert debug == "False"  # debug is off unless EASYAI_DEBUG=1
    assert len(key) >= 50 and (tmp_path / "var" / "secret_key").read_text().strip() == key
    assert stat.S_IMODE((tmp_path / "var" / "secret_key").stat().st_mode) == 0o600
    assert started() == first
    env["SECRET_KEY"] = "x" * 50
    assert started() == "False " + "x" * 50
    env["EASYAI_DEBUG"] = "1"
    assert started().startswith("True ")


def test_importing_the_settings_writes_nothing(tmp_path):
    """Settings only read: a process that imports them without the entry points (a test runner, a bare
    django.setup()) finds no var/ made and signs with a key of its own, and the system check says so."""
    env = _bare_environment(tmp_path / "var")
    first = _run_python(["-c", f"import django; django.setup(); {SHOW}"], env)
    second = _run_python(["-c", f"import django; django.setup(); {SHOW}"], env)
    assert list(tmp_path.iterdir()) == []  # no var/, no secret key, no static folder
    assert first != second  # a key of each process's own
    check = "from django.core import checks; print([m.id for m in checks.run_checks()])"
    assert "easyai.W001" in _run_python(["-c", f"import django; django.setup(); {check}"], env)
    assert _run_python(["manage.py", "check"], env) == "System check identified no issues (0 silenced)."


def _row_counts() -> dict[str, int]:
    from django.contrib.auth import get_user_model

    from clusters.models import Cluster
    from teams.models import Membership, Team

    return {
        "users": get_user_model().objects.count(),
        "clusters": Cluster.objects.count(),
        "teams": Team.objects.count(),
        "memberships": Membership.objects.count(),
    }


@pytest.mark.django_db
def test_bootstrap_creates_the_default_local_cluster_and_a_second_run_changes_nothing(settings, tmp_path, monkeypatch):
    from clusters.models import Cluster

    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("EASYAI_ADMIN_PASSWORD", "first-run-pass-123")
    assert _row_counts() == {"users": 0, "clusters": 0, "teams": 0, "memberships": 0}

    first = io.StringIO()
    call_command("bootstrap", stdout=first)

    cluster = Cluster.objects.get()
    assert (cluster.name, cluster.kind, cluster.is_default, cluster.enabled) == ("local", "local", True, True)
    assert _row_counts() == {"users": 1, "clusters": 1, "teams": 1, "memberships": 1}
    assert "first-run-pass-123" in first.getvalue()
    # Printed once and kept nowhere: nothing under var/ holds it for a task to read.
    assert not any("first-run-pass-123" in path.read_text(errors="replace") for path in tmp_path.rglob("*") if path.is_file())

    again = io.StringIO()
    call_command("bootstrap", stdout=again)

    assert _row_counts() == {"users": 1, "clusters": 1, "teams": 1, "memberships": 1}
    assert Cluster.objects.get().pk == cluster.pk
    assert "Created" not in again.getvalue() and "first-run-pass-123" not in again.getvalue()
    assert "changepassword" in again.getvalue()
    # The shipped job templates, one per framework, loaded once.
    from jobs.models import JobTemplate

    shipped = set(JobTemplate.objects.filter(team__isnull=True).values_list("framework", flat=True))
    assert shipped == {"pytorch", "tensorflow", "mpi", "xgboost", "paddle", "batch"}
    assert "job templates" in first.getvalue() and "job templates" not in again.getvalue()


@pytest.mark.django_db
def test_bootstrap_removes_the_password_file_of_earlier_versions(settings, tmp_path, django_user_model):
    settings.VAR_DIR = tmp_path
    django_user_model.objects.create_superuser("admin", "", "old-pass-123")
    (tmp_path / "admin-password.txt").write_text("old-pass-123\n")
    out = io.StringIO()
    call_command("bootstrap", stdout=out)
    assert not (tmp_path / "admin-password.txt").exists()
    assert "old-pass-123" in out.getvalue()  # shown one last time


@pytest.mark.django_db
def test_bootstrap_adds_no_cluster_when_a_default_one_exists(settings, tmp_path):
    from clusters.models import Cluster

    settings.VAR_DIR = tmp_path
    mine = Cluster.objects.create(name="workstation", kind=Cluster.Kind.LOCAL, is_default=True)

    call_command("bootstrap", stdout=io.StringIO())

    assert list(Cluster.objects.values_list("pk", "name", "is_default")) == [(mine.pk, "workstation", True)]
