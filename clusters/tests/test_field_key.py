"""The key that encrypts kubeconfigs is its own secret: made on first use, never derived from SECRET_KEY, rotatable."""

from __future__ import annotations

import importlib
import io
import stat

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.core.management import CommandError, call_command

from clusters import crypto
from clusters.models import Cluster

KUBECONFIG = "apiVersion: v1\nclusters: [{name: prod}]\nusers: [{name: admin, user: {token: s3cret}}]\n"


@pytest.fixture
def key_file(settings, tmp_path):
    settings.EASYAI_FIELD_KEY = ""
    settings.EASYAI_FIELD_KEY_FILE = str(tmp_path / "keys" / "field_key")
    return tmp_path / "keys" / "field_key"


def test_the_key_is_made_on_first_use_readable_by_the_portal_only_and_not_derived_from_secret_key(key_file):
    assert not key_file.exists()

    token = crypto.encrypt(KUBECONFIG)

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert Fernet(key).decrypt(token.encode()).decode() == KUBECONFIG
    with pytest.raises(InvalidToken):  # SECRET_KEY alone (what a task once read) opens nothing
        Fernet(crypto.legacy_key()).decrypt(token.encode())
    assert crypto.decrypt(crypto.encrypt("again")) == "again"
    assert key_file.read_text().strip() == key  # made once, then kept


@pytest.mark.django_db
def test_a_row_from_before_still_opens_and_the_migration_reencrypts_it(key_file):
    legacy = Fernet(crypto.legacy_key()).encrypt(KUBECONFIG.encode()).decode()
    cluster = Cluster.objects.create(name="prod", kind="kubernetes", kubeconfig_encrypted=legacy)
    assert cluster.kubeconfig == KUBECONFIG
    assert crypto.needs_reencryption(legacy)

    migration = importlib.import_module("clusters.migrations.0002_field_key_of_its_own")
    migration.reencrypt(apps, None)

    cluster.refresh_from_db()
    assert cluster.kubeconfig_encrypted != legacy and not crypto.needs_reencryption(cluster.kubeconfig_encrypted)
    with pytest.raises(InvalidToken):
        Fernet(crypto.legacy_key()).decrypt(cluster.kubeconfig_encrypted.encode())
    assert cluster.kubeconfig == KUBECONFIG


@pytest.mark.django_db
def test_rotate_field_key_reencrypts_every_kubeconfig_with_a_new_key_in_the_file(key_file):
    first = Cluster(name="prod", kind="kubernetes")
    first.kubeconfig = KUBECONFIG
    first.save()
    second = Cluster(name="staging", kind="kubernetes")
    second.kubeconfig = KUBECONFIG.replace("prod", "staging")
    second.save()
    Cluster.objects.create(name="local", kind="local")
    old_key = key_file.read_text().strip()

    out = io.StringIO()
    call_command("rotate_field_key", stdout=out)

    assert "Re-encrypted 2 value(s)" in out.getvalue()
    new_key = key_file.read_text().strip()
    assert new_key != old_key and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    for cluster in Cluster.objects.exclude(kubeconfig_encrypted=""):
        with pytest.raises(InvalidToken):
            Fernet(old_key).decrypt(cluster.kubeconfig_encrypted.encode())
        assert Fernet(new_key).decrypt(cluster.kubeconfig_encrypted.encode())
    assert Cluster.objects.get(name="staging").kubeconfig == KUBECONFIG.replace("prod", "staging")

    chosen = Fernet.generate_key().decode()
    call_command("rotate_field_key", f"--new-key={chosen}", stdout=io.StringIO())  # a key may start with "-"
    assert key_file.read_text().strip() == chosen
    assert Cluster.objects.get(name="prod").kubeconfig == KUBECONFIG


@pytest.mark.django_db
def test_rotate_field_key_with_keys_in_the_environment_reencrypts_under_the_first(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.EASYAI_FIELD_KEY = old
    cluster = Cluster(name="prod", kind="kubernetes")
    cluster.kubeconfig = KUBECONFIG
    cluster.save()

    with pytest.raises(CommandError, match="EASYAI_FIELD_KEY is set in the environment"):
        call_command("rotate_field_key", f"--new-key={new}")

    settings.EASYAI_FIELD_KEY = f"{new},{old}"
    call_command("rotate_field_key", stdout=io.StringIO())
    cluster.refresh_from_db()
    assert Fernet(new).decrypt(cluster.kubeconfig_encrypted.encode()).decode() == KUBECONFIG
    settings.EASYAI_FIELD_KEY = new  # the old key dropped: everything still opens
    assert Cluster.objects.get(pk=cluster.pk).kubeconfig == KUBECONFIG


@pytest.mark.django_db
def test_rotate_field_key_changes_nothing_when_a_kubeconfig_cannot_be_opened(key_file):
    unreadable = Fernet(Fernet.generate_key()).encrypt(b"lost").decode()
    Cluster.objects.create(name="lost", kind="kubernetes", kubeconfig_encrypted=unreadable)
    crypto.current_keys()
    before = key_file.read_text()

    with pytest.raises(CommandError, match="no key in use opens the encrypted values of cluster lost"):
        call_command("rotate_field_key")

    assert key_file.read_text() == before
    assert Cluster.objects.get(name="lost").kubeconfig_encrypted == unreadable
