"""Team services: creation, provisioning notice after commit, and concurrency-safe admin rules."""

from __future__ import annotations

import hashlib

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from clusters import services as cluster_services
from clusters.models import Cluster, Quota
from teams import services
from teams.models import ApiToken, Membership, Profile, Team


@pytest.fixture
def no_provisioning(team_changed_receiver):
    # Nobody listens to team_changed, as in a site without the clusters app's provisioning.
    team_changed_receiver(None)


def test_team_create_makes_the_creator_admin_and_current(make_user, no_provisioning, anyone_creates_teams):
    user = make_user("alice")
    team = services.team_create(creator=user, name="Audio", slug="audio")
    assert Membership.objects.get(team=team, user=user).role == Membership.Role.ADMIN
    assert Profile.objects.get(user=user).current_team == team


def test_team_create_notifies_provisioning_after_commit(
    make_user, provisioning, django_capture_on_commit_callbacks, anyone_creates_teams
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        team = services.team_create(creator=make_user("alice"), name="Audio", slug="audio")
        assert provisioning == []
    for callback in callbacks:
        callback()
    assert provisioning == [team.pk]


def test_quota_save_notifies_provisioning(team, provisioning, django_capture_on_commit_callbacks):
    cluster = Cluster.objects.create(name="k8s", kind=Cluster.Kind.KUBERNETES)
    with django_capture_on_commit_callbacks(execute=True):
        cluster_services.quota_save(quota=Quota(team=team, cluster=cluster, cpu_milli=1000, memory_bytes=2**30, gpu=0))
    assert provisioning == [team.pk]


def test_team_create_works_without_provisioning(
    make_user, no_provisioning, django_capture_on_commit_callbacks, anyone_creates_teams
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.team_create(creator=make_user("alice"), name="Audio", slug="audio")
    assert callbacks == []


def test_a_failing_provisioning_does_not_undo_the_team(
    make_user, team_changed_receiver, django_capture_on_commit_callbacks, anyone_creates_teams
):
    def team_changed(sender, team_id: int, **kwargs) -> None:
        raise ConnectionError("cluster unreachable")

    team_changed_receiver(team_changed)
    with django_capture_on_commit_callbacks(execute=True):
        services.team_create(creator=make_user("alice"), name="Audio", slug="audio")
    assert Team.objects.filter(slug="audio").exists()


def test_duplicate_slug_is_a_validation_error(make_user, team, no_provisioning, anyone_creates_teams):
    with pytest.raises(ValidationError) as exc:
        services.team_create(creator=make_user("alice"), name="Again", slug="vision")
    assert "slug" in exc.value.message_dict
    assert Team.objects.count() == 1


def test_team_update_refuses_the_slug(team):
    with pytest.raises(ValidationError) as exc:
        services.team_update(team=team, slug="other")
    assert "slug" in exc.value.message_dict


def test_creator_is_admin_at_once_despite_the_role_cache(people, no_provisioning, anyone_creates_teams):
    from teams.permissions import can_admin_team, team_role

    mate = people["mate"]
    assert team_role(mate, 0) is None  # fills the per-user role cache
    team = services.team_create(creator=mate, name="Audio", slug="audio")
    assert can_admin_team(mate, team)


def test_token_create_keeps_only_the_hash_and_a_prefix(people):
    token, key = services.token_create(user=people["mate"], name="laptop")
    token.refresh_from_db()
    assert key.startswith("eai_") and len(key) == 44
    assert token.digest == hashlib.sha256(key.encode()).hexdigest() and token.prefix == key[:12]
    assert key not in {value for value in vars(token).values() if isinstance(value, str)}


def test_token_revoke_takes_only_ones_own_token(people):
    token, _key = services.token_create(user=people["mate"])
    with pytest.raises(ValidationError):
        services.token_revoke(user=people["owner"], token_id=token.pk)
    assert ApiToken.objects.filter(pk=token.pk).exists()
    services.token_revoke(user=people["mate"], token_id=token.pk)
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_team_create_is_refused_to_members_by_default(people, no_provisioning):
    for who in ("owner", "mate", "team_admin", "outsider"):
        with pytest.raises(PermissionDenied):
            services.team_create(creator=people[who], name="Audio", slug="audio")
    assert not Team.objects.filter(slug="audio").exists()
    assert services.team_create(creator=people["staff"], name="Audio", slug="audio").slug == "audio"
