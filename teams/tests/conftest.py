"""Fixtures of the teams tests."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Every permission test creates five users; the real hasher makes that take seconds.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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
