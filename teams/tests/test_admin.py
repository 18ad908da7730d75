"""The operators' admin: every teams page renders, quota edits reach provisioning, the team rules hold,
API tokens are listed by prefix (never a key), and jobs are never hard-deleted."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.forms import MultiWidget

from clusters.models import Cluster, Quota
from jobs.models import Job, JobEvent
from teams import services
from teams.models import ApiToken, Membership, Profile, Team
from teams.tokens import user_for_key

User = get_user_model()


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
        "/admin/clusters/quota/",
        f"/admin/clusters/quota/{quota.pk}/change/",
        "/admin/teams/profile/",
        "/admin/auth/user/",
        f"/admin/auth/user/{people['mate'].pk}/change/",
        "/admin/teams/team/?q=vis",
        "/admin/teams/membership/?role=admin",
        f"/admin/teams/membership/{Membership.objects.get(user=people['mate']).pk}/change/",
        "/admin/teams/membership/add/",
        "/admin/teams/apitoken/",
        "/admin/teams/apitoken/?q=mate",
        "/admin/teams/apitoken/add/",
        f"/admin/teams/apitoken/{services.token_create(user=people['mate'])[0].pk}/change/",
    ]
    for url in urls:
        assert client.get(url).status_code == 200, url
    assert ">2<" in client.get("/admin/clusters/quota/").content.decode()


def test_quota_saved_in_admin_reaches_provisioning(
    operator, page, team, provisioning, django_capture_on_commit_callbacks
):
    calls = provisioning
    cluster = Cluster.objects.create(name="k8s", kind=Cluster.Kind.KUBERNETES)
    with django_capture_on_commit_callbacks(execute=True):
        response = page(operator).post(
            "/admin/clusters/quota/add/",
            {"team": team.pk, "cluster": cluster.pk, "cpu_milli": "4000", "memory_bytes": str(2**33), "gpu": "2"},
        )
    assert response.status_code == 302
    assert Quota.objects.get(team=team).gpu == 2
    assert calls == [team.pk]


def test_membership_inline_of_a_user_lists_teams(operator, people, page):
    content = page(operator).get(f"/admin/auth/user/{people['team_admin'].pk}/change/").content.decode()
    assert Membership.objects.filter(user=people["team_admin"]).count() == 1
    assert "vision" in content


# --- the admin keeps the team rules ------------------------------------------------------------


def _form_data(response) -> dict:
    """What the browser would post back from an admin add or change page, unchanged."""
    data: dict = {}

    def add(form) -> None:
        for name, field in form.fields.items():
            if field.disabled:
                continue
            value = form[name].value()
            if value is None or value is False:
                continue
            if isinstance(field.widget, MultiWidget):
                for index, part in enumerate(field.widget.decompress(value)):
                    data[f"{form.add_prefix(name)}_{index}"] = part
                continue
            data[form.add_prefix(name)] = "on" if value is True else value

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{name}"] = value
        for form in formset.initial_forms:
            add(form)
    return data


def _row(formset_prefix: str, data: dict, username: str) -> str:
    """The form prefix of the inline row of this user's membership."""
    for key, value in data.items():
        if (
            key.startswith(f"{formset_prefix}-")
            and key.endswith("-id")
            and Membership.objects.get(pk=value).user.username == username
        ):
            return key.removesuffix("-id")
    raise AssertionError(f"no row for {username}")


def _memberships() -> list[tuple[int, int, str]]:
    return sorted(Membership.objects.values_list("team_id", "user_id", "role"))


@pytest.mark.parametrize("slug", ["new", "switch", "default", "kube-system", "kube-anything"])
def test_admin_refuses_a_reserved_slug(operator, page, slug):
    before = list(Team.objects.values_list("slug", flat=True))
    response = page(operator).post(
        "/admin/teams/team/add/",
        {
            "name": "Reserved",
            "slug": slug,
            "notebook_max_lease_hours": "72",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "quotas-TOTAL_FORMS": "0",
            "quotas-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "This slug is reserved" in response.content.decode()
    assert list(Team.objects.values_list("slug", flat=True)) == before


def test_admin_creates_a_team_with_its_first_admin_inline(operator, people, page):
    response = page(operator).post(
        "/admin/teams/team/add/",
        {
            "name": "Audio",
            "slug": "audio",
            "notebook_max_lease_hours": "72",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "0",
            "memberships-0-user": people["mate"].pk,
            "memberships-0-role": "admin",
            "quotas-TOTAL_FORMS": "0",
            "quotas-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    assert Membership.objects.get(team__slug="audio").user == people["mate"]


def test_team_inline_refuses_to_demote_the_last_admin(operator, people, page, team):
    client = page(operator)
    url = f"/admin/teams/team/{team.pk}/change/"
    data = _form_data(client.get(url))
    data["name"] = "Renamed in the same save"
    data[_row("memberships", data, "teamadmin") + "-role"] = "member"
    before = _memberships()
    response = client.post(url, data, follow=True)
    assert "last admin cannot be demoted" in response.content.decode()
    assert _memberships() == before
    team.refresh_from_db()
    assert team.name == "Vision"


def test_team_inline_refuses_to_remove_the_last_admin(operator, people, page, team):
    client = page(operator)
    url = f"/admin/teams/team/{team.pk}/change/"
    data = _form_data(client.get(url))
    data[_row("memberships", data, "teamadmin") + "-DELETE"] = "on"
    before = _memberships()
    response = client.post(url, data, follow=True)
    assert "last admin cannot be removed" in response.content.decode()
    assert _memberships() == before


def test_team_inline_may_hand_the_admin_role_over_in_one_save(operator, people, page, team):
    client = page(operator)
    url = f"/admin/teams/team/{team.pk}/change/"
    data = _form_data(client.get(url))
    data[_row("memberships", data, "teamadmin") + "-role"] = "member"
    data[_row("memberships", data, "mate") + "-role"] = "admin"
    assert client.post(url, data).status_code == 302
    roles = dict(Membership.objects.filter(team=team).values_list("user__username", "role"))
    assert roles["teamadmin"] == "member" and roles["mate"] == "admin"


def test_team_inline_keeps_the_user_of_an_existing_row(operator, people, page, team, make_user):
    client = page(operator)
    url = f"/admin/teams/team/{team.pk}/change/"
    data = _form_data(client.get(url))
    intruder = make_user("intruder")
    data[_row("memberships", data, "mate") + "-user"] = intruder.pk
    assert client.post(url, data).status_code == 302
    assert not Membership.objects.filter(user=intruder).exists()
    assert Membership.objects.filter(team=team, user=people["mate"]).exists()


def test_user_inline_refuses_to_demote_the_last_admin(operator, people, page):
    client = page(operator)
    url = f"/admin/auth/user/{people['team_admin'].pk}/change/"
    data = _form_data(client.get(url))
    data["memberships-0-role"] = "member"
    before = _memberships()
    response = client.post(url, data, follow=True)
    assert "last admin cannot be demoted" in response.content.decode()
    assert _memberships() == before


def test_user_admin_refuses_to_delete_the_last_admin_of_a_team(operator, people, page):
    client = page(operator)
    url = f"/admin/auth/user/{people['team_admin'].pk}/delete/"
    response = client.post(url, {"post": "yes"}, follow=True)
    assert "last admin of team vision" in response.content.decode()
    assert User.objects.filter(username="teamadmin").exists()
    response = client.post(
        "/admin/auth/user/",
        {"action": "delete_selected", "_selected_action": [people["mate"].pk, people["team_admin"].pk], "post": "yes"},
        follow=True,
    )
    assert "last admin of team vision" in response.content.decode()
    assert User.objects.filter(username__in=["mate", "teamadmin"]).count() == 2


def test_user_admin_deletes_a_member(operator, people, page):
    assert page(operator).post(f"/admin/auth/user/{people['mate'].pk}/delete/", {"post": "yes"}).status_code == 302
    assert not User.objects.filter(username="mate").exists()


def test_membership_admin_refuses_to_demote_the_last_admin(operator, people, page):
    membership = Membership.objects.get(user=people["team_admin"])
    client = page(operator)
    url = f"/admin/teams/membership/{membership.pk}/change/"
    before = _memberships()
    response = client.post(url, {"role": "member"}, follow=True)
    assert "last admin cannot be demoted" in response.content.decode()
    assert _memberships() == before


def test_membership_admin_refuses_to_delete_the_last_admin(operator, people, page):
    membership = Membership.objects.get(user=people["team_admin"])
    client = page(operator)
    before = _memberships()
    response = client.post(f"/admin/teams/membership/{membership.pk}/delete/", {"post": "yes"}, follow=True)
    assert "last admin cannot be removed" in response.content.decode()
    assert _memberships() == before


def test_membership_admin_bulk_delete_is_all_or_nothing(operator, people, page, team):
    Membership.objects.filter(user=people["mate"]).update(role="admin")
    selected = list(Membership.objects.filter(team=team, role="admin").values_list("pk", flat=True))
    client = page(operator)
    before = _memberships()
    response = client.post(
        "/admin/teams/membership/",
        {"action": "delete_selected", "_selected_action": selected, "post": "yes"},
        follow=True,
    )
    assert "last admin cannot be removed" in response.content.decode()
    assert _memberships() == before
    # Nothing was deleted, so the admin's log says nothing was.
    from django.contrib.admin.models import DELETION, LogEntry

    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


def test_membership_admin_keeps_team_and_user_of_a_row(operator, people, page, other_team):
    membership = Membership.objects.get(user=people["mate"])
    response = page(operator).post(
        f"/admin/teams/membership/{membership.pk}/change/",
        {"team": other_team.pk, "user": people["owner"].pk, "role": "admin"},
    )
    assert response.status_code == 302
    membership.refresh_from_db()
    assert (membership.team.slug, membership.user, membership.role) == ("vision", people["mate"], "admin")


def test_membership_admin_adds_through_the_service(operator, people, page, other_team):
    response = page(operator).post(
        "/admin/teams/membership/add/", {"team": other_team.pk, "user": people["mate"].pk, "role": "member"}
    )
    assert response.status_code == 302
    assert Membership.objects.filter(team=other_team, user=people["mate"], role="member").exists()


# --- API tokens ------------------------------------------------------------------------------


def test_token_admin_lists_and_searches_by_prefix_and_never_shows_a_key_or_its_hash(operator, people, page):
    token, key = services.token_create(user=people["mate"], name="laptop")
    services.token_create(user=people["owner"])
    client = page(operator)
    listing = client.get("/admin/teams/apitoken/?q=mate").content.decode()
    assert token.prefix in listing and "owner" not in listing.split("result_list")[1]
    assert key not in listing and token.digest not in listing
    change = client.get(f"/admin/teams/apitoken/{token.pk}/change/").content.decode()
    assert token.prefix in change and key not in change and token.digest not in change
    assert 'name="user"' not in change and 'name="prefix"' not in change and 'name="digest"' not in change
    by_prefix = client.get(f"/admin/teams/apitoken/?q={token.prefix}").content.decode()
    assert "laptop" in by_prefix


def test_token_admin_creates_a_token_and_shows_its_key_once(operator, people, page):
    client = page(operator)
    response = client.post("/admin/teams/apitoken/add/", {"user": people["mate"].pk, "name": "ci"}, follow=True)
    assert response.status_code == 200
    token = ApiToken.objects.get(user=people["mate"])
    shown = [str(message) for message in response.context["messages"]]
    key = next(word for message in shown for word in message.split() if word.startswith("eai_"))
    assert user_for_key(key) == people["mate"] and key.startswith(token.prefix)
    # Once: the next page has no message, and nothing stored holds the key.
    assert key not in client.get(f"/admin/teams/apitoken/{token.pk}/change/").content.decode()


def test_token_admin_can_expire_a_token_at_once(operator, people, page):
    token, key = services.token_create(user=people["mate"])
    response = page(operator).post(
        f"/admin/teams/apitoken/{token.pk}/change/",
        {"name": "", "expires_at_0": "2020-01-01", "expires_at_1": "00:00:00"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert user_for_key(key) is None


# --- jobs are never hard-deleted -------------------------------------------------------------


@pytest.fixture
def job(owner, team, fake_backend) -> Job:
    job = Job.objects.create(
        name="resnet", team=team, owner=owner, cluster=fake_backend.cluster, framework="batch", spec={}
    )
    JobEvent.objects.create(job=job, from_state="", to_state="queued", reason="submitted")
    return job


def test_job_admin_has_no_hard_delete(operator, page, job):
    client = page(operator)
    assert client.get(f"/admin/jobs/job/{job.pk}/delete/").status_code == 403
    assert client.post(f"/admin/jobs/job/{job.pk}/delete/", {"post": "yes"}).status_code == 403
    listing = client.get("/admin/jobs/job/").content.decode()
    assert 'value="delete_selected"' not in listing and 'value="delete_jobs"' in listing
    client.post("/admin/jobs/job/", {"action": "delete_selected", "_selected_action": [job.pk], "post": "yes"})
    assert Job.objects.filter(pk=job.pk, deleted=False).exists()


def test_job_admin_delete_action_hides_the_job_and_keeps_its_record(operator, page, job):
    response = page(operator).post("/admin/jobs/job/", {"action": "delete_jobs", "_selected_action": [job.pk]})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.deleted and job.state == "stopped"
    assert JobEvent.objects.filter(job=job).count() == 2


def test_job_admin_keeps_team_owner_and_cluster(operator, page, job, other_team, outsider):
    other = Cluster.objects.create(name="elsewhere", kind=Cluster.Kind.LOCAL)
    client = page(operator)
    url = f"/admin/jobs/job/{job.pk}/change/"
    content = client.get(url).content.decode()
    assert 'name="team"' not in content and 'name="owner"' not in content and 'name="cluster"' not in content
    data = _form_data(client.get(url))
    data.update({"team": other_team.pk, "owner": outsider.pk, "cluster": other.pk, "name": "renamed"})
    assert client.post(url, data).status_code == 302
    job.refresh_from_db()
    assert (job.team.slug, job.owner.username, job.cluster.name, job.name) == ("vision", "owner", "fake", "renamed")
