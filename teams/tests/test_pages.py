"""Team home, team list and management pages, and the quota units they show."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clusters.models import Cluster, Quota
from teams.models import Membership, Team
from teams.templatetags.units import cores, gib


def test_home_shows_the_current_team_members_and_quotas(people, page, team):
    cluster = Cluster.objects.create(name="gpu-a", kind=Cluster.Kind.KUBERNETES)
    Quota.objects.create(team=team, cluster=cluster, cpu_milli=1500, memory_bytes=16 * 1024**3, gpu=2)
    team.description = "Image models."
    team.save()
    content = page(people["mate"]).get("/").content.decode()
    assert "Vision" in content and "Image models." in content
    for username in ("owner", "mate", "teamadmin"):
        assert username in content
    assert "gpu-a" in content
    assert ">1.5<" in content and ">16<" in content and ">2<" in content


def test_home_without_a_team_asks_to_create_one(make_user, page, anyone_creates_teams):
    content = page(make_user("lonely")).get("/").content.decode()
    assert "/teams/new/" in content
    assert "no team yet" in content


def test_home_without_a_team_offers_no_team_creation_by_default(make_user, page):
    content = page(make_user("lonely")).get("/").content.decode()
    assert "/teams/new/" not in content
    assert "no team yet" in content and "platform admin" in content
    assert "/teams/new/" not in page(make_user("lonelier")).get("/teams/").content.decode()


def test_creating_a_team_on_the_page_makes_it_current(make_user, page, anyone_creates_teams):
    user = make_user("lonely")
    client = page(user)
    response = client.post("/teams/new/", {"name": "Audio", "slug": "audio", "description": "Speech things"})
    assert response.status_code == 302
    assert response["Location"] == "/teams/audio/"
    assert Membership.objects.get(user=user, team__slug="audio").role == "admin"
    assert "Speech things" in client.get("/").content.decode()


def test_team_admin_manages_members_on_the_page(people, page, make_user):
    make_user("newcomer")
    client = page(people["team_admin"])
    assert client.post("/teams/vision/members/", {"username": "newcomer", "role": "admin"}).status_code == 302
    assert Membership.objects.get(user__username="newcomer").role == "admin"
    assert client.post("/teams/vision/members/newcomer/role/", {"role": "member"}).status_code == 302
    assert Membership.objects.get(user__username="newcomer").role == "member"
    assert client.post("/teams/vision/members/newcomer/remove/").status_code == 302
    assert not Membership.objects.filter(user__username="newcomer").exists()


def test_team_admin_changes_settings_on_the_page(people, page):
    response = page(people["team_admin"]).post(
        "/teams/vision/settings/",
        {"name": "Vision Lab", "description": "New", "webhook_url": "https://hooks.example.com/x",
         "notebook_max_lease_hours": "24"},
    )
    assert response.status_code == 302
    team = Team.objects.get(slug="vision")
    assert (team.name, team.webhook_url, team.notebook_max_lease_hours) == (
        "Vision Lab", "https://hooks.example.com/x", 24
    )


def _make_teams(user, count: int) -> None:
    for i in range(count):
        t = Team.objects.create(name=f"T{i}", slug=f"t-{i:03d}")
        Membership.objects.create(team=t, user=user, role=Membership.Role.MEMBER)


def _queries(callable_) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = callable_()
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("who", ["mate", "staff"])
def test_team_list_endpoint_query_count_does_not_grow(people, api, who):
    user = people[who]
    _make_teams(user, 3)
    client = api(user)
    client.get("/api/v1/me/")  # a token's first use writes its last-used time (once a minute at most)
    few = _queries(lambda: client.get("/api/v1/teams/"))
    _make_teams_more = [Team.objects.create(name=f"U{i}", slug=f"u-{i:03d}") for i in range(27)]
    for t in _make_teams_more:
        Membership.objects.create(team=t, user=user, role=Membership.Role.ADMIN)
    many = _queries(lambda: client.get("/api/v1/teams/"))
    assert few == many
    assert client.get("/api/v1/teams/").json()["count"] >= 30


def test_team_list_page_query_count_does_not_grow(people, page):
    user = people["mate"]
    _make_teams(user, 3)
    client = page(user)
    few = _queries(lambda: client.get("/teams/"))
    for i in range(27):
        t = Team.objects.create(name=f"U{i}", slug=f"u-{i:03d}")
        Membership.objects.create(team=t, user=user)
    many = _queries(lambda: client.get("/teams/"))
    assert few == many


def test_team_members_endpoint_query_count_does_not_grow(people, api, make_user, team):
    client = api(people["mate"])
    client.get("/api/v1/me/")  # a token's first use writes its last-used time (once a minute at most)
    few = _queries(lambda: client.get("/api/v1/teams/vision/members/"))
    for i in range(20):
        Membership.objects.create(team=team, user=make_user(f"m{i}"))
    many = _queries(lambda: client.get("/api/v1/teams/vision/members/"))
    assert few == many


def test_team_detail_endpoint_lists_members_and_quotas(people, api, team):
    cluster = Cluster.objects.create(name="gpu-a", kind=Cluster.Kind.KUBERNETES)
    Quota.objects.create(team=team, cluster=cluster, cpu_milli=4000, memory_bytes=2**30, gpu=1)
    data = api(people["mate"]).get("/api/v1/teams/vision/").json()
    assert data["role"] == "member"
    assert data["member_count"] == 3
    assert [(m["username"], m["role"]) for m in data["members"]] == [
        ("mate", "member"), ("owner", "member"), ("teamadmin", "admin")
    ]
    assert data["quotas"] == [{"cluster": "gpu-a", "cpu_milli": 4000, "memory_bytes": 2**30, "gpu": 1}]


@pytest.mark.parametrize(
    ("milli", "expected"), [(0, "0"), (500, "0.5"), (1000, "1"), (1500, "1.5"), (2250, "2.25"), (64000, "64")]
)
def test_cpu_quota_is_shown_in_cores(milli, expected):
    assert cores(milli) == expected


@pytest.mark.parametrize(
    ("size", "expected"), [(0, "0"), (2**30, "1"), (16 * 2**30, "16"), (3 * 2**29, "1.5"), (10**9, "0.93")]
)
def test_memory_quota_is_shown_in_gib(size, expected):
    assert gib(size) == expected
