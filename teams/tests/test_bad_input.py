"""Bad input gets a 400 that names the field, and changes nothing."""

from __future__ import annotations

import pytest

from teams.models import Membership, Profile, Team


def _rows():
    teams = list(
        Team.objects.order_by("pk").values_list(
            "slug", "name", "description", "webhook_url", "notebook_max_lease_hours"
        )
    )
    members = list(Membership.objects.order_by("pk").values_list("team_id", "user_id", "role"))
    return teams, members


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Bad", "slug": "Bad_Slug"}, "slug"),
        ({"name": "Bad", "slug": "-starts-with-dash"}, "slug"),
        ({"name": "Bad", "slug": "ends-with-dash-"}, "slug"),
        ({"name": "Bad", "slug": "a" * 64}, "slug"),
        ({"name": "Bad", "slug": "vision"}, "slug"),
        ({"name": "Bad", "slug": "kube-system"}, "slug"),
        ({"name": "Bad", "slug": "new"}, "slug"),
        ({"name": "Bad", "slug": ""}, "slug"),
        ({"name": "Bad"}, "slug"),
        ({"name": [], "slug": "fine"}, "name"),
        ({"name": "", "slug": "fine"}, "name"),
        ({"name": "x" * 101, "slug": "fine"}, "name"),
        ({"name": "Fine", "slug": ["fine"]}, "slug"),
        ({"name": "Fine", "slug": "fine", "description": {"a": 1}}, "description"),
    ],
)
def test_bad_team_is_refused_with_the_field_named(people, api, body, field, anyone_creates_teams):
    before = _rows()
    response = api(people["mate"]).post("/api/v1/teams/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert _rows() == before


def test_a_63_character_slug_is_accepted(people, api, anyone_creates_teams):
    response = api(people["mate"]).post("/api/v1/teams/", {"name": "Long", "slug": "a" * 63}, format="json")
    assert response.status_code == 201
    assert Team.objects.filter(slug="a" * 63).exists()


def test_slug_error_explains_the_namespace_rule(people, api, anyone_creates_teams):
    response = api(people["mate"]).post("/api/v1/teams/", {"name": "Bad", "slug": "Bad_Slug"}, format="json")
    assert "Kubernetes namespace" in response.json()["slug"][0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": []}, "name"),
        ({"name": ""}, "name"),
        ({"webhook_url": "not a url"}, "webhook_url"),
        ({"notebook_max_lease_hours": "many"}, "notebook_max_lease_hours"),
        ({"notebook_max_lease_hours": 0}, "notebook_max_lease_hours"),
        ({"notebook_max_lease_hours": 87841}, "notebook_max_lease_hours"),  # past ten years: no date
        ({"notebook_max_lease_hours": 2**31}, "notebook_max_lease_hours"),
    ],
)
def test_bad_team_change_is_refused(people, api, body, field):
    before = _rows()
    response = api(people["team_admin"]).patch("/api/v1/teams/vision/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert _rows() == before


def test_the_longest_lease_a_team_may_allow_is_ten_years(people, api):
    response = api(people["team_admin"]).patch("/api/v1/teams/vision/", {"notebook_max_lease_hours": 87840}, format="json")
    assert response.status_code == 200, response.json()
    assert Team.objects.get(slug="vision").notebook_max_lease_hours == 87840


@pytest.mark.parametrize("body", [{"slug": "other"}, {"slug": "vision"}, {"name": "Renamed", "slug": "other"}])
def test_slug_cannot_be_changed(people, api, body):
    before = _rows()
    response = api(people["team_admin"]).patch("/api/v1/teams/vision/", body, format="json")
    assert response.status_code == 400
    assert "cannot be changed" in response.json()["slug"][0]
    assert _rows() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "nobody", "role": "member"}, "username"),
        ({"username": "owner", "role": "member"}, "username"),
        ({"username": "owner", "role": "admin"}, "username"),
        ({"username": "outsider", "role": 5}, "role"),
        ({"username": "outsider", "role": "owner"}, "role"),
        ({"username": ["outsider"], "role": "member"}, "username"),
        ({"role": "member"}, "username"),
    ],
)
def test_bad_member_addition_is_refused(people, api, body, field):
    before = _rows()
    response = api(people["team_admin"]).post("/api/v1/teams/vision/members/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert _rows() == before


def test_last_admin_cannot_be_demoted(people, api):
    before = _rows()
    response = api(people["team_admin"]).patch(
        "/api/v1/teams/vision/members/teamadmin/", {"role": "member"}, format="json"
    )
    assert response.status_code == 400
    assert "role" in response.json()
    assert _rows() == before


def test_last_admin_cannot_be_removed(people, api):
    before = _rows()
    response = api(people["team_admin"]).delete("/api/v1/teams/vision/members/teamadmin/")
    assert response.status_code == 400
    assert "username" in response.json()
    assert _rows() == before


def test_platform_admin_cannot_remove_the_last_admin_either(people, api):
    before = _rows()
    response = api(people["staff"]).delete("/api/v1/teams/vision/members/teamadmin/")
    assert response.status_code == 400
    assert _rows() == before


def test_an_admin_can_step_down_once_there_is_another(people, api):
    client = api(people["team_admin"])
    assert client.patch("/api/v1/teams/vision/members/mate/", {"role": "admin"}, format="json").status_code == 200
    response = client.patch("/api/v1/teams/vision/members/teamadmin/", {"role": "member"}, format="json")
    assert response.status_code == 200
    assert Membership.objects.get(user=people["team_admin"]).role == "member"


@pytest.mark.parametrize("body", [{"role": 5}, {"role": "boss"}, {}, {"role": None}])
def test_bad_role_change_is_refused(people, api, body):
    before = _rows()
    response = api(people["team_admin"]).patch("/api/v1/teams/vision/members/mate/", body, format="json")
    assert response.status_code == 400
    assert "role" in response.json()
    assert _rows() == before


def test_changing_a_non_member_is_refused(people, api):
    before = _rows()
    client = api(people["team_admin"])
    response = client.patch("/api/v1/teams/vision/members/outsider/", {"role": "admin"}, format="json")
    assert response.status_code == 400
    assert "username" in response.json()
    assert client.delete("/api/v1/teams/vision/members/nobody/").status_code == 400
    assert _rows() == before


def test_removed_member_loses_the_team_as_current_team(people, api):
    mate = people["mate"]
    Profile.objects.create(user=mate, current_team=Team.objects.get(slug="vision"))
    assert api(people["team_admin"]).delete("/api/v1/teams/vision/members/mate/").status_code == 204
    assert Profile.objects.get(user=mate).current_team is None
    assert api(mate).get("/api/v1/teams/vision/").status_code == 404


def test_malformed_json_is_a_400(people, api):
    response = api(people["mate"]).generic("POST", "/api/v1/teams/", "{not json", content_type="application/json")
    assert response.status_code == 400


# --- pages show errors at the field ----------------------------------------------------


def test_create_page_shows_slug_error_at_the_field(people, page, anyone_creates_teams):
    before = _rows()
    response = page(people["mate"]).post("/teams/new/", {"name": "Bad", "slug": "Bad_Slug"})
    assert response.status_code == 400
    assert 'id="id_slug_error"' in response.content.decode()
    assert _rows() == before


def test_create_page_refuses_a_taken_slug(people, page, anyone_creates_teams):
    before = _rows()
    response = page(people["mate"]).post("/teams/new/", {"name": "Again", "slug": "vision"})
    assert response.status_code == 400
    assert 'id="id_slug_error"' in response.content.decode()
    assert _rows() == before


def test_member_page_shows_unknown_user_at_the_field(people, page):
    before = _rows()
    response = page(people["team_admin"]).post("/teams/vision/members/", {"username": "nobody", "role": "member"})
    assert response.status_code == 400
    content = response.content.decode()
    assert 'id="id_username_error"' in content and "nobody" in content
    assert _rows() == before


def test_member_page_refuses_to_demote_the_last_admin(people, page):
    before = _rows()
    response = page(people["team_admin"]).post("/teams/vision/members/teamadmin/role/", {"role": "member"})
    assert response.status_code == 400
    assert "last admin" in response.content.decode()
    assert _rows() == before


def test_member_page_refuses_a_bad_role(people, page):
    before = _rows()
    response = page(people["team_admin"]).post("/teams/vision/members/mate/role/", {"role": "boss"})
    assert response.status_code == 400
    assert _rows() == before


def test_settings_page_shows_a_lease_past_ten_years_at_the_field(people, page):
    before = _rows()
    response = page(people["team_admin"]).post(
        "/teams/vision/settings/", {"name": "Vision", "webhook_url": "", "notebook_max_lease_hours": "87841"}
    )
    assert response.status_code == 400
    assert 'id="id_notebook_max_lease_hours_error"' in response.content.decode()
    assert _rows() == before


def test_settings_page_shows_a_bad_webhook_at_the_field(people, page):
    before = _rows()
    response = page(people["team_admin"]).post(
        "/teams/vision/settings/", {"name": "Vision", "webhook_url": "nope", "notebook_max_lease_hours": "1"}
    )
    assert response.status_code == 400
    assert 'id="id_webhook_url_error"' in response.content.decode()
    assert _rows() == before
