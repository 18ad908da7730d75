"""The operators' admin: every teams page renders, and quota edits reach provisioning."""

from __future__ import annotations

import sys
import types

import pytest

from clusters.models import Cluster
from teams.models import Membership, Profile, Quota


@pytest.fixture
def operator(make_user):
    return make_user("operator", is_staff=True, is_superuser=True)


def test_admin_pages_render(operator, people, page, team):
    cluster = Cluster.objects.create(name="k8s", kind=Cluster.Kind.KUBERNETES)
    quota = Quota.objects.create(team=team, cluster=cluster, cpu_milli=2000, memory_bytes=2**31, gpu=1)
    Profile.objects.create(user=people["mate"], current_team=team)
    client = page(operator)
    urls = [
        "/admin/teams/team/",
        f"/admin/teams/team/{team.pk}/change/",
        "/admin/teams/team/add/",
        "/admin/teams/membership/",
        "/admin/teams/quota/",
        f"/admin/teams/quota/{quota.pk}/change/",
        "/admin/teams/profile/",
        "/admin/auth/user/",
        f"/admin/auth/user/{people['mate'].pk}/change/",
        "/admin/teams/team/?q=vis",
        "/admin/teams/membership/?role=admin",
    ]
    for url in urls:
        assert client.get(url).status_code == 200, url
    assert ">2<" in client.get("/admin/teams/quota/").content.decode()


def test_quota_saved_in_admin_reaches_provisioning(operator, page, team, monkeypatch, django_capture_on_commit_callbacks):
    calls: list[int] = []
    module = types.ModuleType("clusters.provisioning")
    module.team_changed = calls.append
    monkeypatch.setitem(sys.modules, "clusters.provisioning", module)
    cluster = Cluster.objects.create(name="k8s", kind=Cluster.Kind.KUBERNETES)
    with django_capture_on_commit_callbacks(execute=True):
        response = page(operator).post(
            "/admin/teams/quota/add/",
            {"team": team.pk, "cluster": cluster.pk, "cpu_milli": "4000", "memory_bytes": str(2**33), "gpu": "2"},
        )
    assert response.status_code == 302
    assert Quota.objects.get(team=team).gpu == 2
    assert calls == [team.pk]


def test_membership_inline_of_a_user_lists_teams(operator, people, page):
    content = page(operator).get(f"/admin/auth/user/{people['team_admin'].pk}/change/").content.decode()
    assert Membership.objects.filter(user=people["team_admin"]).count() == 1
    assert "vision" in content
