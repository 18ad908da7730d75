"""Fixtures shared by every app's tests: the people of a permission test, a team, clusters."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from clusters.backends import use_backend
from clusters.backends.fake import FakeBackend
from clusters.models import Cluster
from teams.models import Membership, Team

# The shared test support (the fake Kubernetes API, the live ASGI server, the browser's settings): testing/.
# Loaded here, not with -p in addopts, because the project root is on sys.path only once this file is.
pytest_plugins = ["testing.plugin"]

PASSWORD = "s3cret-pass-123"


@pytest.fixture
def make_user(db):
    def make(username: str, **fields):
        return get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORD, **fields)

    return make


@pytest.fixture
def team(db) -> Team:
    return Team.objects.create(name="Vision", slug="vision")


@pytest.fixture
def other_team(db) -> Team:
    return Team.objects.create(name="Speech", slug="speech")


@pytest.fixture
def owner(make_user, team):
    user = make_user("owner")
    Membership.objects.create(team=team, user=user, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def mate(make_user, team):
    user = make_user("mate")
    Membership.objects.create(team=team, user=user, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def team_admin(make_user, team):
    user = make_user("teamadmin")
    Membership.objects.create(team=team, user=user, role=Membership.Role.ADMIN)
    return user


@pytest.fixture
def outsider(make_user, other_team):
    user = make_user("outsider")
    Membership.objects.create(team=other_team, user=user, role=Membership.Role.ADMIN)
    return user


@pytest.fixture
def staff(make_user):
    return make_user("staff", is_staff=True)


@pytest.fixture
def people(owner, mate, team_admin, outsider, staff):
    """Everyone of a permission matrix, by role."""
    return {"owner": owner, "mate": mate, "team_admin": team_admin, "outsider": outsider, "staff": staff}


def token_key_for(user) -> str:
    """The key of an API token of the user's (tokens are kept hashed: the key is known when it is made only)."""
    from teams.services import token_create

    keys = getattr(user, "_test_token_keys", None)
    if keys is None:
        keys = user._test_token_keys = []
    if not keys:
        keys.append(token_create(user=user, name="test")[1])
    return keys[0]


def api_client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_key_for(user)}")
    return client


@pytest.fixture
def api():
    """api(user) -> an APIClient authenticated with the user's token (anonymous with None)."""
    return api_client_for


@pytest.fixture
def fake_backend(db):
    """A default cluster whose backend is a FakeBackend the test drives."""
    cluster = Cluster.objects.create(name="fake", kind=Cluster.Kind.LOCAL, is_default=True)
    backend = FakeBackend()
    use_backend(cluster.name, backend)
    backend.cluster = cluster
    yield backend
    use_backend(cluster.name, None)


@pytest.fixture(autouse=True)
def _isolated_storage(settings, tmp_path, monkeypatch):
    """Every test gets its own storage root and local backend state; django-q2 tasks run inline."""
    from django_q.conf import Conf

    # Each test its own cache: the throttles and the scheduler's marks must not leak between tests,
    # and clearing it must never flush a shared Redis.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(tmp_path)}}
    settings.EASYAI_STORAGE_ROOT = tmp_path / "storage"
    settings.EASYAI_LOCAL_STATE_DIR = tmp_path / "local-backend"
    # django-q2 reads its settings once at import: switch its own flag (tests that need a real
    # worker start one and switch it back).
    monkeypatch.setattr(Conf, "SYNC", True)
