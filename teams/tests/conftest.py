"""Fixtures of the teams tests."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client


@pytest.fixture(autouse=True)
def _clear_cache():
    # Throttle counters live in the default (local-memory) cache; a test must not inherit them.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def anyone_creates_teams(settings):
    """Team creation opened to every signed-in user (EASYAI_TEAM_CREATORS=everyone; the default is staff only)."""
    settings.EASYAI_TEAM_CREATORS = "everyone"


@pytest.fixture
def page():
    """page(user) -> a Django test client signed in as the user (anonymous with None)."""

    def make(user=None, **kwargs) -> Client:
        client = Client(**kwargs)
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture
def team_changed_receiver():
    """team_changed_receiver(fn) puts fn in place of the clusters app's provisioning receiver (None: no receiver)."""
    from clusters import services as cluster_services
    from teams.signals import team_changed

    def swap(receiver) -> None:
        team_changed.disconnect(dispatch_uid="clusters-provision-team")
        if receiver is not None:
            team_changed.connect(receiver, dispatch_uid="test-team-changed", weak=False)

    yield swap
    team_changed.disconnect(dispatch_uid="test-team-changed")
    team_changed.connect(cluster_services.team_changed_received, dispatch_uid="clusters-provision-team")


@pytest.fixture
def provisioning(team_changed_receiver) -> list[int]:
    """The team ids cluster provisioning is told about (team_changed, sent after commit), in order."""
    calls: list[int] = []
    team_changed_receiver(lambda sender, team_id, **kwargs: calls.append(team_id))
    return calls
