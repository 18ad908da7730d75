"""Sharing one object with someone outside its team: per-object grants through the API and the admin."""

from __future__ import annotations

import pytest
from guardian.models import UserObjectPermission
from guardian.shortcuts import get_user_perms

from jobs.models import Job
from notebooks.models import Notebook

SHARES = "/api/v1/shares/"


@pytest.fixture
def job(owner, team, fake_backend) -> Job:
    return Job.objects.create(
        name="resnet", team=team, owner=owner, cluster=fake_backend.cluster, framework="batch", spec={}
    )


@pytest.fixture
def notebook(owner, team, fake_backend) -> Notebook:
    return Notebook.objects.create(name="scratch", team=team, owner=owner, cluster=fake_backend.cluster)


def _share(client, job: Job, user: str = "outsider", permission: str = "view"):
    return client.post(
        SHARES, {"kind": "job", "id": job.public_id, "user": user, "permission": permission}, format="json"
    )


def _grants() -> list[tuple[int, str, str]]:
    return sorted(UserObjectPermission.objects.values_list("user_id", "permission__codename", "object_pk"))


def test_owner_shares_a_job_for_viewing_with_an_outsider(people, api, job):
    outsider = api(people["outsider"])
    assert outsider.get(f"/api/v1/jobs/{job.public_id}/").status_code == 404

    response = _share(api(people["owner"]), job)
    assert response.status_code == 200
    assert response.json() == {
        "kind": "job",
        "id": job.public_id,
        "grants": [{"user": "outsider", "permissions": ["view"]}],
    }

    detail = outsider.get(f"/api/v1/jobs/{job.public_id}/")
    assert detail.status_code == 200
    assert detail.json()["can_change"] is False
    assert [row["id"] for row in outsider.get("/api/v1/jobs/").json()["results"]] == [job.public_id]
    assert outsider.post(f"/api/v1/jobs/{job.public_id}/stop/").status_code == 403
    assert outsider.delete(f"/api/v1/jobs/{job.public_id}/").status_code == 403
    job.refresh_from_db()
    assert job.state == "queued" and not job.deleted


def test_a_change_grant_comes_with_view(people, api, job):
    assert _share(api(people["team_admin"]), job, permission="change").status_code == 200
    assert sorted(get_user_perms(people["outsider"], job)) == ["change_job", "view_job"]
    detail = api(people["outsider"]).get(f"/api/v1/jobs/{job.public_id}/")
    assert detail.status_code == 200
    assert detail.json()["can_change"] is True


@pytest.mark.parametrize(("who", "status"), [("mate", 403), ("outsider", 404)])
def test_only_the_owner_or_a_team_admin_may_share(people, api, job, make_user, who, status):
    make_user("friend")
    before = _grants()
    assert _share(api(people[who]), job, user="friend").status_code == status
    assert _grants() == before


def test_platform_admin_may_share(people, api, job):
    assert _share(api(people["staff"]), job).status_code == 200
    assert api(people["outsider"]).get(f"/api/v1/jobs/{job.public_id}/").status_code == 200


@pytest.mark.parametrize("permission", ["view", "change"])
def test_a_grant_cannot_be_passed_on(people, api, job, make_user, permission):
    make_user("friend")
    assert _share(api(people["owner"]), job, permission=permission).status_code == 200
    before = _grants()
    assert _share(api(people["outsider"]), job, user="friend").status_code == 403
    assert _grants() == before


def test_revoking_view_takes_the_job_away(people, api, job):
    owner = api(people["owner"])
    _share(owner, job, permission="change")
    response = owner.delete(SHARES, {"kind": "job", "id": job.public_id, "user": "outsider"}, format="json")
    assert response.status_code == 204
    assert _grants() == []
    assert api(people["outsider"]).get(f"/api/v1/jobs/{job.public_id}/").status_code == 404


def test_revoking_change_keeps_view(people, api, job):
    owner = api(people["owner"])
    _share(owner, job, permission="change")
    query = f"?kind=job&id={job.public_id}&user=outsider&permission=change"
    assert owner.delete(SHARES + query).status_code == 204
    assert list(get_user_perms(people["outsider"], job)) == ["view_job"]
    detail = api(people["outsider"]).get(f"/api/v1/jobs/{job.public_id}/")
    assert detail.status_code == 200 and detail.json()["can_change"] is False


def test_team_mate_cannot_revoke(people, api, job):
    _share(api(people["owner"]), job)
    before = _grants()
    response = api(people["mate"]).delete(
        SHARES, {"kind": "job", "id": job.public_id, "user": "outsider"}, format="json"
    )
    assert response.status_code == 403
    assert _grants() == before


def test_shares_of_a_job_are_listed_for_its_owner_only(people, api, job):
    _share(api(people["owner"]), job)
    query = f"?kind=job&id={job.public_id}"
    listed = api(people["team_admin"]).get(SHARES + query)
    assert listed.status_code == 200
    assert listed.json()["grants"] == [{"user": "outsider", "permissions": ["view"]}]
    assert api(people["mate"]).get(SHARES + query).status_code == 403
    assert api(people["outsider"]).get(SHARES + query).status_code == 403
    assert api(None).get(SHARES + query).status_code == 401


def test_a_notebook_is_shared_the_same_way(people, api, notebook):
    outsider = api(people["outsider"])
    assert outsider.get(f"/api/v1/notebooks/{notebook.pk}/").status_code == 404
    body = {"kind": "notebook", "id": notebook.pk, "user": "outsider", "permission": "view"}
    assert api(people["owner"]).post(SHARES, body, format="json").status_code == 200
    assert outsider.get(f"/api/v1/notebooks/{notebook.pk}/").status_code == 200


def test_a_deleted_notebooks_grants_go_with_it(people, api, notebook, team, owner, fake_backend):
    body = {"kind": "notebook", "id": notebook.pk, "user": "outsider", "permission": "change"}
    assert api(people["owner"]).post(SHARES, body, format="json").status_code == 200
    other = Notebook.objects.create(name="other", team=team, owner=owner, cluster=fake_backend.cluster)
    api(people["owner"]).post(SHARES, {**body, "id": other.pk}, format="json")
    pk = notebook.pk

    notebook.delete()

    assert [grant[2] for grant in _grants()] == [str(other.pk), str(other.pk)]  # only the other notebook's
    assert not UserObjectPermission.objects.filter(object_pk=str(pk)).exists()


def test_a_deleted_job_cannot_be_shared(people, api, job):
    Job.objects.filter(pk=job.pk).update(deleted=True)
    assert _share(api(people["owner"]), job).status_code == 404
    assert _grants() == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"user": "nobody"}, "user"),
        ({"user": ""}, "user"),
        ({"user": ["outsider"]}, "user"),
        ({"permission": "admin"}, "permission"),
        ({"permission": "delete"}, "permission"),
        ({"permission": None}, "permission"),
        ({"kind": "team"}, "kind"),
        ({"kind": None}, "kind"),
        ({"id": "not-a-job"}, "id"),
        ({"id": ""}, "id"),
        ({"kind": "notebook"}, "id"),
    ],
)
def test_bad_share_is_refused_with_the_field_named(people, api, job, change, field):
    body = {"kind": "job", "id": job.public_id, "user": "outsider", "permission": "view", **change}
    response = api(people["owner"]).post(SHARES, body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert _grants() == []


def test_an_inactive_user_cannot_be_shared_with(people, api, job, make_user):
    make_user("gone", is_active=False)
    response = _share(api(people["owner"]), job, user="gone")
    assert response.status_code == 400
    assert "user" in response.json()
    assert _grants() == []


def test_sharing_needs_authentication(people, api, job):
    assert _share(api(None), job).status_code == 401
    assert _grants() == []


# --- the admin's object permissions page ---------------------------------------------------------


@pytest.fixture
def operator(make_user):
    return make_user("operator", is_staff=True, is_superuser=True)


def test_operator_grants_change_on_a_job_in_the_admin(people, page, api, operator, job):
    client = page(operator)
    base = f"/admin/jobs/job/{job.pk}/permissions/"
    assert client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode().count(base) == 1
    response = client.post(base, {"user": "outsider", "submit_manage_user": "1"})
    assert response.status_code == 302
    manage = response["Location"]
    form = client.get(manage).content.decode()
    assert 'value="view_job"' in form and 'value="change_job"' in form
    assert 'value="delete_job"' not in form and 'value="add_job"' not in form

    assert client.post(manage, {"permissions": ["change_job"]}).status_code == 302
    assert sorted(get_user_perms(people["outsider"], job)) == ["change_job", "view_job"]
    assert api(people["outsider"]).get(f"/api/v1/jobs/{job.public_id}/").json()["can_change"] is True

    assert client.post(manage, {"permissions": ["view_job"]}).status_code == 302
    assert list(get_user_perms(people["outsider"], job)) == ["view_job"]
    # A browser always sends the CSRF token, which is what binds guardian's form when nothing is ticked.
    assert client.post(manage, {"csrfmiddlewaretoken": "sent-by-every-browser"}).status_code == 302
    assert _grants() == []
    assert api(people["outsider"]).get(f"/api/v1/jobs/{job.public_id}/").status_code == 404


def test_operator_grants_view_on_a_notebook_in_the_admin(people, page, api, operator, notebook):
    client = page(operator)
    manage = f"/admin/notebooks/notebook/{notebook.pk}/permissions/user-manage/{people['outsider'].pk}/"
    assert client.post(manage, {"permissions": ["view_notebook"]}).status_code == 302
    assert api(people["outsider"]).get(f"/api/v1/notebooks/{notebook.pk}/").status_code == 200


# --- the registry and the share-exactly service ---------------------------------------------


def test_each_app_registers_what_it_shares():
    from jobs.models import Experiment
    from teams import sharing

    assert sharing.kinds() == ["experiment", "job", "notebook"]
    assert [sharing.shareable(kind).model for kind in sharing.kinds()] == [Experiment, Job, Notebook]
    assert sharing.shareable("job").lookup == "public_id"


def test_the_teams_app_names_no_shareable_model_of_another_app():
    import ast
    from pathlib import Path

    import teams

    root = Path(teams.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not node.value.startswith(("jobs.", "notebooks.")), f"{path.name} names {node.value}"
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in {"jobs", "notebooks"}, path.name


@pytest.mark.parametrize(
    ("chosen", "expected"),
    [
        (["change"], {"view_job", "change_job"}),
        (["view"], {"view_job"}),
        ([], set()),
        (["view", "change"], {"view_job", "change_job"}),
    ],
)
def test_share_exactly_leaves_just_the_chosen_grants(people, job, chosen, expected):
    from teams import services

    outsider = people["outsider"]
    services.object_share(obj=job, grantee=outsider, permission="change")
    services.object_share_exactly(obj=job, grantee=outsider, permissions=chosen)
    assert set(get_user_perms(outsider, job)) == expected
