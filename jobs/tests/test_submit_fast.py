"""The submit path's reads compiled once per connection (teams.prepared): the same statements and objects as the
ORM's, nothing kept between requests (a revoked token, a team left, a quota changed count at the next request)."""

import json

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from clusters.models import Cluster, Quota
from jobs import quota as quotas
from jobs.models import Job
from teams import selectors, tokens
from teams.models import ApiToken, Membership, Profile, Team
from teams.prepared import PreparedRead, first_of
from teams.services import token_create


def spec(**fields) -> dict:
    return {"name": "fast", "framework": "pytorch", "image": "img", "command": "python t.py",
            "roles": {"master": {"replicas": 1, "cpu": "1", "memory": "1Gi"}}, **fields}  # fmt: skip


def submit(client, doc: dict):
    return client.post("/api/v1/jobs/", json.dumps(doc), content_type="application/json")


def sql_of(read) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        read()
    return [q["sql"] for q in captured.captured_queries]


@pytest.mark.django_db
def test_the_token_read_is_the_orms_statement_and_objects(owner):
    key = token_create(user=owner, name="t")[1]
    digest = tokens.digest_of(key)
    orm = sql_of(lambda: ApiToken.objects.select_related("user").filter(digest=digest).first())
    for _ in range(2):  # compiled, then reused
        assert sql_of(lambda: tokens._token_by_digest.first(digest=digest)) == orm
    token = tokens._token_by_digest.first(digest=digest)
    expected = ApiToken.objects.select_related("user").get(digest=digest)
    assert [(f.attname, getattr(token, f.attname)) for f in ApiToken._meta.concrete_fields] == [
        (f.attname, getattr(expected, f.attname)) for f in ApiToken._meta.concrete_fields
    ]
    with CaptureQueriesContext(connection) as captured:
        assert token.user == owner and token.user.username == "owner" and token.user.is_active is True
    assert not captured.captured_queries  # the user came in the same row
    assert tokens._token_by_digest.first(digest=tokens.digest_of("eai_unknown")) is None


@pytest.mark.django_db
def test_the_current_team_read_follows_the_profile_and_memberships(owner, team, other_team):
    assert selectors.current_team_for(owner) == team
    Membership.objects.create(team=other_team, user=owner, role=Membership.Role.MEMBER)
    assert selectors.current_team_for(owner) == other_team  # "speech" comes before "vision"
    Profile.objects.update_or_create(user=owner, defaults={"current_team": team})
    with CaptureQueriesContext(connection) as captured:
        chosen = selectors.current_team_for(owner)
    assert chosen == team and chosen.name == "Vision" and len(captured.captured_queries) == 1
    Membership.objects.filter(user=owner).delete()
    assert selectors.current_team_for(owner) is None


@pytest.mark.django_db
def test_the_cluster_read_brings_the_teams_quota(team, other_team):
    first = Cluster.objects.create(name="b-first", kind=Cluster.Kind.LOCAL)
    default = Cluster.objects.create(name="a-default", kind=Cluster.Kind.LOCAL, is_default=True)
    Quota.objects.create(team=team, cluster=default, cpu_milli=4000, memory_bytes=2**30, gpu=1)
    Quota.objects.create(team=other_team, cluster=first, cpu_milli=1000, memory_bytes=2**20, gpu=0)

    cluster = quotas.cluster_with_team_quota(team.pk)
    assert cluster == default and quotas.quota_of(cluster, team.pk).cpu_milli == 4000
    assert quotas.quota_of(quotas.cluster_with_team_quota(other_team.pk), other_team.pk) is None
    named = quotas.cluster_with_team_quota(other_team.pk, "b-first")
    assert named == first and quotas.quota_of(named, other_team.pk).memory_bytes == 2**20
    assert quotas.cluster_with_team_quota(team.pk, "b-first").team_quota_id is None
    assert quotas.cluster_with_team_quota(team.pk, "nowhere") is None

    Cluster.objects.filter(pk=default.pk).update(enabled=False)
    assert quotas.cluster_with_team_quota(team.pk) == first  # the default is disabled: the first enabled
    assert quotas.cluster_with_team_quota(team.pk, "a-default").enabled is False
    Cluster.objects.update(enabled=False)
    assert quotas.cluster_with_team_quota(team.pk) is None


@pytest.mark.django_db
def test_a_revoked_token_stops_at_the_next_request(api, owner, fake_backend):
    client = api(owner)
    assert submit(client, spec()).status_code == 201
    ApiToken.objects.filter(user=owner).delete()
    assert submit(client, spec()).status_code == 401
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_a_deactivated_user_and_an_expired_token_stop_at_the_next_request(api, owner, fake_backend):
    from django.utils import timezone

    client = api(owner)
    assert submit(client, spec()).status_code == 201
    ApiToken.objects.filter(user=owner).update(expires_at=timezone.now())
    response = submit(client, spec())
    assert response.status_code == 401 and "expired" in response.json()["detail"]
    ApiToken.objects.filter(user=owner).update(expires_at=None)
    assert submit(client, spec()).status_code == 201
    type(owner).objects.filter(pk=owner.pk).update(is_active=False)
    assert submit(client, spec()).status_code == 401


@pytest.mark.django_db
def test_a_submit_sees_team_and_quota_changes_at_once(api, owner, team, other_team, fake_backend):
    client = api(owner)
    assert submit(client, spec()).json()["team"] == "vision"
    quota = Quota.objects.create(team=team, cluster=fake_backend.cluster, cpu_milli=500, memory_bytes=2**40, gpu=0)
    response = submit(client, spec())
    assert response.status_code == 400 and "quota" in response.json()["roles"][0]
    Quota.objects.filter(pk=quota.pk).update(cpu_milli=2000)
    assert submit(client, spec()).status_code == 201

    Membership.objects.create(team=other_team, user=owner, role=Membership.Role.MEMBER)
    assert submit(client, spec()).json()["team"] == "speech"  # no quota there
    Membership.objects.filter(user=owner).delete()
    response = submit(client, spec())
    assert response.status_code == 400 and "team" in response.json()

    Membership.objects.create(team=team, user=owner, role=Membership.Role.MEMBER)
    Cluster.objects.create(name="off", kind=Cluster.Kind.LOCAL, enabled=False)
    assert "disabled" in submit(client, spec(cluster="off")).json()["cluster"][0]
    assert "No cluster" in submit(client, spec(cluster="none")).json()["cluster"][0]
    Cluster.objects.update(enabled=False)
    assert "No cluster is enabled" in submit(client, spec()).json()["cluster"][0]


@pytest.mark.django_db
def test_a_prepared_read_coerces_values_as_the_field_would(team):
    @PreparedRead
    def by_slug_and_id(slug: str, team_id: int):
        return first_of(Team.objects.filter(slug=slug, pk=team_id))

    assert by_slug_and_id.first(slug="vision", team_id=str(team.pk)) == team
    assert by_slug_and_id.all(slug="vision", team_id=team.pk + 1) == []


def test_a_prepared_read_refuses_what_it_cannot_give_again():
    with pytest.raises(TypeError):

        @PreparedRead
        def untyped(slug):
            return Team.objects.filter(slug=slug)

    @PreparedRead
    def pattern(part: str):
        return Team.objects.filter(slug__contains=part)

    with pytest.raises(ValueError, match="does not reach the SQL"):
        pattern._plan()

    @PreparedRead
    def exact_or_pattern(part: str):
        return Team.objects.filter(Q(slug=part) | Q(name__contains=part))

    with pytest.raises(ValueError, match="changed"):
        exact_or_pattern._plan()


@pytest.mark.django_db
def test_an_experiment_is_found_in_the_jobs_team_and_made_on_first_use(api, owner, outsider, team, fake_backend):
    from jobs.models import Experiment

    first = submit(api(owner), spec(experiment="sweep")).json()
    again = submit(api(owner), spec(experiment="sweep")).json()
    assert first["experiment"] == again["experiment"] == "sweep"
    assert Experiment.objects.get().team == team and Job.objects.filter(experiment__name="sweep").count() == 2
    assert submit(api(outsider), spec(experiment="sweep")).status_code == 201  # their team's own
    assert sorted(Experiment.objects.values_list("team__slug", flat=True)) == ["speech", "vision"]
