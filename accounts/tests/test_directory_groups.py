"""Teams that follow directory groups, against the real slapd: a mapping's memberships added, changed and removed
at sign-in and by the periodic sync, hand-made memberships untouched, the last admin kept (refused and reported),
every change recorded "by directory sync", and a person removed from the directory losing API access."""

from __future__ import annotations

import ldap
import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import Client

from accounts import schedule
from accounts.ldap import directory_sync
from accounts.models import DirectoryAccount, DirectoryChange, GroupMapping
from teams import services as team_services
from teams.models import ApiToken, Membership, Team
from testing import ldap as test_ldap

pytestmark = pytest.mark.django_db

User = get_user_model()


def sign_in(uid: str) -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"username": uid, "password": test_ldap.password_of(uid)})
    assert response.status_code == 302, f"{uid} was not signed in"
    return client


def token_of(uid: str) -> str:
    answer = Client().post(
        "/api/v1/auth/token/",
        {"username": uid, "password": test_ldap.password_of(uid)},
        content_type="application/json",
    )
    assert answer.status_code == 200, answer.content
    return answer.json()["token"]


def memberships(uid: str) -> dict[str, tuple[str, str]]:
    return {
        m.team.slug: (m.role, m.source) for m in Membership.objects.filter(user__username=uid).select_related("team")
    }


def messages_of(uid: str) -> list[str]:
    return list(DirectoryChange.objects.filter(user__username=uid).order_by("pk").values_list("message", flat=True))


def test_a_mapping_adds_a_membership_at_sign_in_and_takes_it_away_when_the_group_does(ldap_site, ldap_mappings):
    sign_in("alice")
    assert memberships("alice") == {"vision": ("member", "directory")}
    assert messages_of("alice") == ["alice added to team vision as member by directory sync (at sign-in)"]

    # Into the admins' group: the next sign-in makes her an admin.
    ldap_site.add_member(test_ldap.VISION_ADMINS_GROUP, "alice")
    sign_in("alice")
    assert memberships("alice") == {"vision": ("admin", "directory")}

    # Out of both groups: the next sign-in takes the membership away (bob is vision's admin meanwhile).
    sign_in("bob")
    ldap_site.remove_member(test_ldap.VISION_ADMINS_GROUP, "alice")
    ldap_site.remove_member(test_ldap.VISION_GROUP, "alice")
    sign_in("alice")
    assert memberships("alice") == {}
    assert messages_of("alice")[-1] == "alice removed from team vision by directory sync (at sign-in)"


def test_the_periodic_sync_follows_the_groups_and_copies_changed_attributes(ldap_site, ldap_mappings):
    sign_in("alice")
    sign_in("bob")
    ldap_site.remove_member(test_ldap.VISION_GROUP, "alice")
    ldap_site.modify(test_ldap.person_dn("alice"), [(ldap.MOD_REPLACE, "sn", [b"Pleasance"])])
    result = directory_sync()
    assert result == {"seen": 2, "removed": 0, "changes": 1}
    assert memberships("alice") == {}
    assert User.objects.get(username="alice").last_name == "Pleasance"
    assert messages_of("alice")[-1] == "alice removed from team vision by directory sync (in the periodic sync)"
    # A second pass finds nothing to do.
    assert directory_sync() == {"seen": 2, "removed": 0, "changes": 0}


def test_memberships_made_by_hand_are_never_touched(ldap_site, ldap_mappings, vision):
    speech = Team.objects.create(name="Speech", slug="speech")
    # erin is in no mapped group but was added to both teams by hand; alice was made vision's admin by hand.
    sign_in("erin")
    sign_in("alice")
    Membership.objects.filter(user__username="alice").delete()
    team_services.membership_add(team=vision, username="erin", role="member")
    team_services.membership_add(team=speech, username="erin", role="admin")
    team_services.membership_add(team=vision, username="alice", role="admin")
    sign_in("erin")
    sign_in("alice")
    directory_sync()
    assert memberships("erin") == {"vision": ("member", "hand"), "speech": ("admin", "hand")}
    assert memberships("alice") == {"vision": ("admin", "hand")}
    # Out of the directory's group, alice keeps the membership an admin gave her.
    ldap_site.remove_member(test_ldap.VISION_GROUP, "alice")
    directory_sync()
    assert memberships("alice") == {"vision": ("admin", "hand")}


def test_a_team_admin_changing_a_granted_role_makes_the_membership_theirs(ldap_site, ldap_mappings, vision):
    sign_in("bob")
    sign_in("alice")
    team_services.membership_change_role(team=vision, username="alice", role="admin")
    assert memberships("alice") == {"vision": ("admin", "hand")}
    sign_in("alice")  # the directory says member; the hand-made role stays
    assert memberships("alice") == {"vision": ("admin", "hand")}


def test_the_last_admin_is_kept_and_the_refusal_reported(ldap_site, ldap_mappings, vision):
    sign_in("bob")
    assert memberships("bob") == {"vision": ("admin", "directory")}
    ldap_site.remove_member(test_ldap.VISION_ADMINS_GROUP, "bob")
    result = directory_sync()
    assert result["changes"] == 1
    assert memberships("bob") == {"vision": ("admin", "directory")}
    refused = DirectoryChange.objects.get(user__username="bob", action="refused")
    assert refused.team == vision
    assert "not removed from team vision by directory sync" in refused.message
    assert "last admin" in refused.message
    # Once the team has another admin, the next pass takes bob out.
    sign_in("alice")
    team_services.membership_change_role(team=vision, username="alice", role="admin")
    directory_sync()
    assert memberships("bob") == {}


def test_a_person_removed_from_the_directory_loses_api_access_at_the_next_sync(ldap_site, ldap_mappings):
    sign_in("bob")
    key = token_of("alice")
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    assert memberships("alice") == {"vision": ("member", "directory")}

    ldap_site.delete(test_ldap.person_dn("alice"))
    # Until the sync runs, the token still works: the portal does not ask the directory on every call.
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    result = directory_sync()
    assert result["removed"] == 1
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 401
    assert not ApiToken.objects.filter(user__username="alice").exists()
    assert memberships("alice") == {}
    alice = User.objects.get(username="alice")
    assert not alice.is_active
    assert DirectoryAccount.objects.get(user=alice).removed_at is not None
    assert messages_of("alice")[-3:] == [
        "alice removed from team vision by directory sync (in the periodic sync)",
        "1 API token(s) of alice revoked by directory sync (in the periodic sync): no longer in the directory",
        "alice deactivated by directory sync (in the periodic sync): no longer in the directory",
    ]
    # bob is untouched.
    assert memberships("bob") == {"vision": ("admin", "directory")}


def test_a_person_disabled_in_the_directory_loses_api_access_and_comes_back_when_enabled(ldap_site, ldap_mappings):
    key = token_of("alice")
    ldap_site.add_member(test_ldap.DISABLED_GROUP, "alice")
    directory_sync()
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 401
    assert "deny group" in messages_of("alice")[-1]
    ldap_site.remove_member(test_ldap.DISABLED_GROUP, "alice")
    sign_in("alice")  # the directory lets her in again: the account is active again, her groups apply
    assert User.objects.get(username="alice").is_active
    assert memberships("alice") == {"vision": ("member", "directory")}
    assert "reactivated by directory sync" in " ".join(messages_of("alice"))


def test_a_lock_by_the_password_policy_is_seen_by_the_sync(ldap_site):
    key = token_of("erin")
    ldap_site.modify(test_ldap.person_dn("erin"), [(ldap.MOD_ADD, "pwdAccountLockedTime", [b"000001010000Z"])])
    directory_sync()
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 401
    assert "pwdAccountLockedTime" in messages_of("erin")[-1]


def test_a_directory_that_does_not_answer_changes_nothing(ldap_site, ldap_mappings):
    key = token_of("alice")
    ldap_site.stop()
    result = directory_sync()
    assert "cannot be used" in result["error"]
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    assert memberships("alice") == {"vision": ("member", "directory")}
    assert User.objects.get(username="alice").is_active


def test_the_clock_enqueues_the_sync_when_ldap_is_configured(ldap_site, ldap_mappings, settings):
    sign_in("alice")
    ldap_site.remove_member(test_ldap.VISION_GROUP, "alice")
    last: dict = {}
    assert schedule.enqueue_due(last) is True  # the test run's django-q2 is synchronous: the pass ran
    assert memberships("alice") == {}
    assert schedule.enqueue_due(last) is False  # not again within the interval
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
    settings.EASYAI_DIRECTORY_SYNC_SECONDS = 1
    assert schedule.enqueue_due({}) is False


def test_a_mapping_names_an_ldap_group_by_its_dn(vision):
    with pytest.raises(ValidationError) as refused:
        GroupMapping(directory="ldap", group="ml-vision", team=vision, role="member").full_clean()
    assert "group" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        GroupMapping(directory="ldap", group="cn=x,ou=groups", team=vision, role="owner").full_clean()
    assert "role" in refused.value.message_dict
    assert not GroupMapping.objects.exists()
