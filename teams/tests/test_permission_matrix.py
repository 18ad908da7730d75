"""Who may do what on every team endpoint and page.

Anonymous callers get 401 from the API and a sign-in redirect from pages;
outsiders get 404 (the team's existence does not leak); members read; team
admins and platform admins (staff) administer. Token exchange, sign-up and the
API's schema and docs are open to everyone.
"""

from __future__ import annotations

import pytest

from conftest import PASSWORD
from teams.models import Membership, Profile, Team

WHO = ["anonymous", "outsider", "owner", "mate", "team_admin", "staff"]


def _person(people, who):
    return None if who == "anonymous" else people[who]


# (method, url, body, {who: status}); missing people get the "*" status.
# fmt: off
API = [
    ("get", "/api/v1/teams/vision/", None, {"anonymous": 401, "outsider": 404, "*": 200}),
    ("patch", "/api/v1/teams/vision/", {"name": "Vision 2"},
     {"anonymous": 401, "outsider": 404, "owner": 403, "mate": 403, "*": 200}),
    ("get", "/api/v1/teams/vision/members/", None, {"anonymous": 401, "outsider": 404, "*": 200}),
    ("post", "/api/v1/teams/vision/members/", {"username": "newcomer", "role": "member"},
     {"anonymous": 401, "outsider": 404, "owner": 403, "mate": 403, "*": 201}),
    ("patch", "/api/v1/teams/vision/members/mate/", {"role": "admin"},
     {"anonymous": 401, "outsider": 404, "owner": 403, "mate": 403, "*": 200}),
    ("delete", "/api/v1/teams/vision/members/mate/", None,
     {"anonymous": 401, "outsider": 404, "owner": 403, "mate": 403, "*": 204}),
    ("get", "/api/v1/teams/", None, {"anonymous": 401, "*": 200}),
    # Teams are created by platform admins only (EASYAI_TEAM_CREATORS=staff, the default).
    ("post", "/api/v1/teams/", {"name": "New", "slug": "new-team"}, {"anonymous": 401, "staff": 201, "*": 403}),
    ("get", "/api/v1/me/", None, {"anonymous": 401, "*": 200}),
    # The exchange ignores whoever calls: only the posted username and password count.
    ("post", "/api/v1/auth/token/", {"username": "owner", "password": PASSWORD}, {"*": 200}),
    ("post", "/api/v1/auth/token/", {"username": "owner", "password": "wrong"}, {"*": 400}),
    ("get", "/api/schema/", None, {"*": 200}),
    # Sharing names its object in the body or query; one nobody may see is not found for anyone.
    ("get", "/api/v1/shares/?kind=job&id=j-00000000", None, {"anonymous": 401, "*": 404}),
]

LOGIN = 302  # pages send anonymous people to the sign-in page

PAGES = [
    ("get", "/", None, {"anonymous": LOGIN, "*": 200}),
    ("get", "/teams/", None, {"anonymous": LOGIN, "*": 200}),
    ("get", "/teams/new/", None, {"anonymous": LOGIN, "staff": 200, "*": 403}),
    ("post", "/teams/new/", {"name": "New", "slug": "new-team"}, {"anonymous": LOGIN, "staff": 302, "*": 403}),
    ("get", "/teams/vision/", None, {"anonymous": LOGIN, "outsider": 404, "*": 200}),
    ("post", "/teams/vision/settings/", {"name": "Vision 2", "notebook_max_lease_hours": "24"},
     {"anonymous": LOGIN, "outsider": 404, "owner": 403, "mate": 403, "*": 302}),
    ("post", "/teams/vision/members/", {"username": "newcomer", "role": "member"},
     {"anonymous": LOGIN, "outsider": 404, "owner": 403, "mate": 403, "*": 302}),
    ("post", "/teams/vision/members/mate/role/", {"role": "admin"},
     {"anonymous": LOGIN, "outsider": 404, "owner": 403, "mate": 403, "*": 302}),
    ("post", "/teams/vision/members/mate/remove/", {},
     {"anonymous": LOGIN, "outsider": 404, "owner": 403, "mate": 403, "*": 302}),
    ("get", "/accounts/profile/", None, {"anonymous": LOGIN, "*": 200}),
    ("post", "/accounts/profile/token/", {}, {"anonymous": LOGIN, "*": 200}),  # the new key, shown in the page
    ("post", "/teams/switch/", {"team": "vision", "next": "/"},
     {"anonymous": LOGIN, "outsider": 404, "*": 302}),
    ("get", "/accounts/signup/", None, {"*": 404}),  # sign-up is off by default
    ("get", "/api/docs/", None, {"*": 200}),
]
# fmt: on


def _id(case):
    return f"{case[0]} {case[1]}"


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("case", API, ids=_id)
def test_api_permissions(people, api, make_user, who, case):
    make_user("newcomer")
    method, url, body, expected = case
    response = getattr(api(_person(people, who)), method)(url, body, format="json")
    assert response.status_code == expected.get(who, expected["*"]), response.content


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("case", PAGES, ids=_id)
def test_page_permissions(people, page, make_user, who, case):
    make_user("newcomer")
    method, url, body, expected = case
    response = getattr(page(_person(people, who)), method)(url, body)
    status = expected.get(who, expected["*"])
    assert response.status_code == status
    if who == "anonymous" and status == LOGIN:
        assert response["Location"].startswith("/accounts/login/?next=")


def test_outsider_cannot_switch_to_a_team_they_cannot_see(people, page):
    outsider = people["outsider"]
    Profile.objects.create(user=outsider, current_team=Team.objects.get(slug="speech"))
    assert page(outsider).post("/teams/switch/", {"team": "vision", "next": "/"}).status_code == 404
    assert Profile.objects.get(user=outsider).current_team.slug == "speech"


def test_member_switches_to_their_team(people, page):
    mate = people["mate"]
    assert page(mate).post("/teams/switch/", {"team": "vision", "next": "/jobs/"})["Location"] == "/jobs/"
    assert Profile.objects.get(user=mate).current_team.slug == "vision"


def test_outsider_does_not_see_the_team_in_lists(people, api, page):
    outsider = people["outsider"]
    slugs = [t["slug"] for t in api(outsider).get("/api/v1/teams/").json()["results"]]
    assert slugs == ["speech"]
    assert b"/teams/vision/" not in page(outsider).get("/teams/").content


def test_platform_admin_sees_every_team(people, api):
    slugs = [t["slug"] for t in api(people["staff"]).get("/api/v1/teams/").json()["results"]]
    assert slugs == ["speech", "vision"]


def test_member_sees_members_but_no_management_controls(people, page):
    content = page(people["mate"]).get("/teams/vision/").content.decode()
    assert "teamadmin" in content and "owner" in content
    assert "/teams/vision/members/mate/remove/" not in content
    assert 'id="member-add"' not in content


def test_team_admin_sees_management_controls(people, page):
    content = page(people["team_admin"]).get("/teams/vision/").content.decode()
    assert "/teams/vision/members/mate/remove/" in content
    assert 'id="member-add"' in content
    assert 'id="team-settings"' in content


def test_refused_member_actions_change_nothing(people, api):
    before = list(Membership.objects.order_by("pk").values_list("team_id", "user_id", "role"))
    api(people["mate"]).patch("/api/v1/teams/vision/members/owner/", {"role": "admin"}, format="json")
    api(people["outsider"]).delete("/api/v1/teams/vision/members/owner/")
    api(people["mate"]).patch("/api/v1/teams/vision/", {"name": "Taken"}, format="json")
    assert list(Membership.objects.order_by("pk").values_list("team_id", "user_id", "role")) == before
    assert Team.objects.get(slug="vision").name == "Vision"


def test_creator_becomes_admin_of_the_new_team(people, api, anyone_creates_teams):
    response = api(people["mate"]).post("/api/v1/teams/", {"name": "Audio", "slug": "audio"}, format="json")
    assert response.status_code == 201
    assert response.json()["role"] == "admin"
    assert Membership.objects.get(team__slug="audio").user == people["mate"]


@pytest.mark.parametrize("who", WHO)
def test_with_team_creation_opened_every_signed_in_person_may_create_a_team(people, api, page, settings, who):
    settings.EASYAI_TEAM_CREATORS = "everyone"
    response = api(_person(people, who)).post("/api/v1/teams/", {"name": "New", "slug": "new-team"}, format="json")
    assert response.status_code == (401 if who == "anonymous" else 201)
    response = page(_person(people, who)).get("/teams/new/")
    assert response.status_code == (LOGIN if who == "anonymous" else 200)


@pytest.mark.parametrize("who", WHO)
def test_with_sign_up_on_only_anonymous_people_see_the_page(people, page, settings, who):
    settings.EASYAI_SIGNUP_ENABLED = True
    assert page(_person(people, who)).get("/accounts/signup/").status_code == (200 if who == "anonymous" else 302)


@pytest.mark.parametrize("who", WHO)
def test_only_the_owner_of_a_token_may_revoke_it(people, page, who):
    from teams.services import token_create
    from teams.tokens import user_for_key

    token, key = token_create(user=people["owner"])
    response = page(_person(people, who)).post(f"/accounts/profile/tokens/{token.pk}/revoke/")
    expected = {"anonymous": LOGIN, "owner": 302}.get(who, 404)  # a platform admin revokes in the admin
    assert response.status_code == expected
    assert (user_for_key(key) is None) == (who == "owner")
