"""Who opens a job's endpoints: the permission module's Action.OPEN, asked by the proxy and the job page alike."""

from __future__ import annotations

import pytest

from endpoints.proxy import Refused, authorize
from jobs.models import Job
from notebooks.models import Notebook
from teams import permissions
from teams.permissions import Action


def _job(fake_backend, team, owner, framework: str) -> Job:
    return Job.objects.create(
        name="j", team=team, owner=owner, cluster=fake_backend.cluster, framework=framework, spec={}
    )


@pytest.mark.django_db
def test_a_notebook_job_is_opened_by_its_owner_alone(fake_backend, team, people):
    job = _job(fake_backend, team, people["owner"], "notebook")
    opens = {who: permissions.can(user, job, Action.OPEN) for who, user in people.items()}
    assert opens == {"owner": True, "mate": False, "team_admin": False, "outsider": False, "staff": False}
    # Seen, but not opened: the proxy refuses a team-mate with 403 before it looks at tasks or ports.
    with pytest.raises(Refused) as refused:
        authorize(people["mate"], job.public_id, "notebook-0", "jupyter")
    assert refused.value.status == 403


@pytest.mark.django_db
def test_any_other_jobs_endpoints_are_opened_by_whoever_may_see_the_job(fake_backend, team, people):
    job = _job(fake_backend, team, people["owner"], "batch")
    opens = {who: permissions.can(user, job, Action.OPEN) for who, user in people.items()}
    assert opens == {"owner": True, "mate": True, "team_admin": True, "outsider": False, "staff": True}


@pytest.mark.django_db
def test_a_notebook_is_personal_as_its_job_is(fake_backend, team, people):
    job = _job(fake_backend, team, people["owner"], "notebook")
    notebook = Notebook(team=team, owner=people["owner"], cluster=fake_backend.cluster, job=job, name="n")
    assert permissions.is_personal(notebook) and permissions.is_personal(job)
    assert [who for who, user in people.items() if permissions.can(user, notebook, Action.OPEN)] == ["owner"]


def test_open_is_asked_of_one_object():
    with pytest.raises(ValueError):
        permissions.restrict(Job.objects.all(), None, Action.OPEN)
