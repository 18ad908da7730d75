"""API tokens at rest, tried as an attacker who can read the database: no key is there to read.

A key is shown once (API exchange, profile page); what is stored is its SHA-256 and a prefix. An
expired, revoked or unknown key is refused by the API and the websockets alike; the last-used time
is kept, cheaply.
"""

from __future__ import annotations

import types
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from conftest import PASSWORD
from easyai_site.ws_auth import TokenAuthMiddleware
from teams import services
from teams.models import ApiToken
from teams.tokens import digest_of, user_for_key


def _every_cell() -> list[str]:
    """Every value of every row of every table, as text: what someone who copied the database file holds."""
    cells: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                cells.extend(value.decode("latin-1") if isinstance(value, bytes) else str(value) for value in row)
    return cells


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


# The websocket stack reads the database in a worker thread (database_sync_to_async): tests that use it
# commit their rows for that thread to see.
ws_test = pytest.mark.django_db(transaction=True)


def _ws_user(key: str):
    """The user the websocket stack would put on the scope for this key (anonymous when refused)."""
    seen = {}

    async def inner(scope, receive, send):
        seen["user"] = scope["user"]

    scope = {"type": "websocket", "headers": [(b"authorization", f"Token {key}".encode())]}
    # In a thread of its own: after the browser tests, this thread keeps Playwright's event loop running.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(async_to_sync(TokenAuthMiddleware(inner)), scope, None, None).result()
    return seen["user"]


def test_no_key_is_in_the_database_in_clear(people):
    api_key = APIClient().post("/api/v1/auth/token/", {"username": "mate", "password": PASSWORD}, format="json")
    api_key = api_key.json()["token"]
    page = Client()
    page.force_login(people["owner"])
    page_key = page.post("/accounts/profile/token/", {"name": "laptop"}).context["new_key"]
    _token, service_key = services.token_create(user=people["outsider"])

    cells = _every_cell()
    for key in (api_key, page_key, service_key):
        assert not any(key in cell for cell in cells), "a key is stored in clear"
        assert any(digest_of(key) == cell for cell in cells)  # the hash is what is kept
    # and each key, shown once, works
    assert _client(api_key).get("/api/v1/me/").json()["username"] == "mate"
    assert _client(page_key).get("/api/v1/me/").json()["username"] == "owner"
    assert _client(service_key).get("/api/v1/me/").json()["username"] == "outsider"


@ws_test
def test_the_hash_or_the_prefix_read_from_the_database_does_not_authenticate(people):
    token, _key = services.token_create(user=people["mate"])
    for stolen in (token.digest, token.prefix):
        assert _client(stolen).get("/api/v1/me/").status_code == 401
        assert not _ws_user(stolen).is_authenticated


@ws_test
def test_the_key_works_on_the_websockets_too(people):
    _token, key = services.token_create(user=people["mate"])
    assert _ws_user(key) == people["mate"]


@ws_test
def test_an_expired_token_is_refused_by_the_api_and_the_websockets(people):
    token, key = services.token_create(user=people["mate"], expires_at=timezone.now() + timedelta(days=1))
    assert _client(key).get("/api/v1/me/").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _client(key).get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["detail"] == "Token expired."
    assert not _ws_user(key).is_authenticated


def test_a_token_cannot_be_made_already_expired(people):
    with pytest.raises(Exception, match="future"):
        services.token_create(user=people["mate"], expires_at=timezone.now() - timedelta(days=1))


def test_the_exchange_makes_an_expiring_token_when_asked(people):
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": "mate", "password": PASSWORD, "expires_in_days": 7}, format="json"
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(user=people["mate"])
    assert timedelta(days=6) < token.expires_at - timezone.now() <= timedelta(days=7)
    assert response.json()["expires_at"] is not None


@ws_test
def test_a_deactivated_users_token_is_refused(people):
    _token, key = services.token_create(user=people["mate"])
    people["mate"].is_active = False
    people["mate"].save()
    assert _client(key).get("/api/v1/me/").status_code == 401
    assert not _ws_user(key).is_authenticated


def test_last_used_is_set_and_written_at_most_once_a_minute(people):
    token, key = services.token_create(user=people["mate"])
    assert token.last_used_at is None
    client = _client(key)
    client.get("/api/v1/me/")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None and timezone.now() - first < timedelta(seconds=30)

    with CaptureQueriesContext(connection) as queries:
        client.get("/api/v1/me/")
        client.get("/api/v1/me/")
    assert not [q for q in queries.captured_queries if q["sql"].upper().startswith("UPDATE")]
    token.refresh_from_db()
    assert token.last_used_at == first

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    client.get("/api/v1/me/")
    token.refresh_from_db()
    assert token.last_used_at > first - timedelta(minutes=2)


def test_a_revoked_token_stops_working_at_once(people):
    token, key = services.token_create(user=people["mate"])
    services.token_revoke(user=people["mate"], token_id=token.pk)
    assert _client(key).get("/api/v1/me/").status_code == 401


@pytest.mark.django_db(transaction=True)  # the legacy table's DDL commits on MySQL: no test transaction around it
def test_keys_of_earlier_versions_are_hashed_by_the_migration_and_keep_working(people):
    """The data migration: DRF's authtoken table (keys in clear) becomes hashed tokens, and the table is emptied."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("teams.migrations.0003_hash_legacy_tokens")
    old_key = "0123456789abcdef0123456789abcdef01234567"
    q = connection.ops.quote_name
    table = q("authtoken_token")
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {table} ({q('key')} varchar(40) NOT NULL PRIMARY KEY, "
            f"{q('created')} datetime NOT NULL, {q('user_id')} integer NOT NULL UNIQUE)"
        )
        cursor.execute(
            f"INSERT INTO {table} ({q('key')}, {q('created')}, {q('user_id')}) VALUES (%s, %s, %s)",
            [old_key, "2025-01-02 03:04:05", people["mate"].pk],
        )
    try:
        # What RunPython hands over: the connection and its quoting.
        editor = types.SimpleNamespace(connection=connection, quote_name=q)
        migration.hash_legacy_tokens(apps, editor)
        migration.hash_legacy_tokens(apps, editor)  # twice: nothing doubled
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            assert cursor.fetchone()[0] == 0
        token = ApiToken.objects.get(user=people["mate"])
        assert token.prefix == old_key[:8] and token.digest == digest_of(old_key)
        assert token.created_at.year == 2025
        assert user_for_key(old_key) == people["mate"]
        assert not any(old_key in cell for cell in _every_cell())
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {table}")
