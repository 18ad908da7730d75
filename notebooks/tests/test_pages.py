"""The notebooks page: renewing a notebook for a chosen number of hours, refusals shown at the field."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notebooks import services
from notebooks.models import Notebook

GOOD = {"name": "lab", "cpu": "1", "memory": "1Gi"}


@pytest.fixture
def notebook(fake_backend, people, team, django_capture_on_commit_callbacks) -> Notebook:
    with django_capture_on_commit_callbacks(execute=True):
        return services.notebook_create(user=people["owner"], team=team, **GOOD)


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def renew_input(page: str, notebook: Notebook) -> str | None:
    found = re.search(rf'<input[^>]*id="id_renew_{notebook.pk}_lease_hours"[^>]*>', page)
    return found.group(0) if found else None


def field_error(page: str, notebook: Notebook) -> str | None:
    found = re.search(
        rf'<div class="field-error small" id="id_renew_{notebook.pk}_lease_hours_error">(.*?)</div>', page
    )
    return html.unescape(found.group(1)) if found else None


def lease_of(notebook: Notebook) -> tuple[int, object]:
    fresh = Notebook.objects.get(pk=notebook.pk)
    return fresh.lease_hours, fresh.expires_at


def test_the_renew_form_offers_the_notebooks_lease_up_to_the_teams_maximum(people, notebook, team):
    team.notebook_max_lease_hours = 24
    team.save()
    field = renew_input(client_for(people["owner"]).get("/notebooks/").content.decode(), notebook)
    assert field is not None
    assert 'name="lease_hours"' in field and 'value="8"' in field and 'max="24"' in field and 'min="1"' in field


def test_owner_renews_for_four_hours(people, notebook):
    client = client_for(people["owner"])
    response = client.post(f"/notebooks/{notebook.pk}/renew/", {"lease_hours": "4"})
    assert response.status_code == 302 and response.url == "/notebooks/"
    hours, expires = lease_of(notebook)
    assert hours == 4
    assert timedelta(hours=3, minutes=59) < expires - timezone.now() <= timedelta(hours=4)
    page = client.get("/notebooks/").content.decode()
    assert "Notebook lab renewed until" in page
    assert 'value="4"' in renew_input(page, notebook) and field_error(page, notebook) is None


def test_an_empty_field_renews_for_the_notebooks_own_lease(people, notebook):
    response = client_for(people["owner"]).post(f"/notebooks/{notebook.pk}/renew/", {"lease_hours": ""})
    assert response.status_code == 302
    hours, expires = lease_of(notebook)
    assert hours == 8 and timedelta(hours=7, minutes=59) < expires - timezone.now() <= timedelta(hours=8)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("13", "At most 12 hours: the team's maximum lease"),
        ("0", "At least 1 hour."),
        ("four", "A whole number of hours."),
        ("²", "A whole number of hours."),
        ("12345678901", "at most 10 characters"),
    ],
)
def test_a_refused_renewal_is_shown_at_the_field_and_changes_nothing(people, notebook, team, typed, message):
    team.notebook_max_lease_hours = 12
    team.save()
    before = lease_of(notebook)
    client = client_for(people["owner"])
    response = client.post(f"/notebooks/{notebook.pk}/renew/", {"lease_hours": typed})
    assert response.status_code == 302
    assert lease_of(notebook) == before
    page = client.get(response.url).content.decode()
    error = field_error(page, notebook)
    assert error is not None and message in error
    assert html.unescape(page).count(message) == 1
    field = renew_input(page, notebook)
    assert "is-invalid" in field and f'aria-describedby="id_renew_{notebook.pk}_lease_hours_error"' in field
    assert "renewed until" not in page
    # Shown once: the next visit is a plain page again.
    again = client.get("/notebooks/").content.decode()
    assert field_error(again, notebook) is None and "is-invalid" not in renew_input(again, notebook)


@pytest.mark.parametrize(("who", "status"), [("outsider", 404), ("mate", 403), ("team_admin", 403)])
def test_only_the_owner_renews(people, notebook, who, status):
    before = lease_of(notebook)
    response = client_for(people[who]).post(f"/notebooks/{notebook.pk}/renew/", {"lease_hours": "4"})
    assert response.status_code == status
    assert lease_of(notebook) == before


def test_anonymous_is_sent_to_sign_in(notebook):
    response = Client().post(f"/notebooks/{notebook.pk}/renew/", {"lease_hours": "4"})
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_team_mates_see_the_notebook_but_no_renew_form(people, notebook):
    page = client_for(people["mate"]).get("/notebooks/").content.decode()
    assert f'id="notebook-{notebook.pk}"' in page and renew_input(page, notebook) is None


def test_stopped_notebook_has_no_renew_form(people, notebook, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.notebook_stop(notebook=notebook, actor=people["owner"])
    page = client_for(people["owner"]).get("/notebooks/").content.decode()
    assert renew_input(page, notebook) is None


def test_the_list_makes_as_many_queries_for_many_notebooks_as_for_one(
    people, notebook, team, django_capture_on_commit_callbacks
):
    client = client_for(people["owner"])
    client.get("/notebooks/")
    with CaptureQueriesContext(connection) as one:
        client.get("/notebooks/")
    with django_capture_on_commit_callbacks(execute=True):
        for name in ("lab-b", "lab-c", "lab-d"):
            services.notebook_create(user=people["owner"], team=team, **{**GOOD, "name": name})
    with CaptureQueriesContext(connection) as many:
        page = client.get("/notebooks/").content.decode()
    assert page.count('name="lease_hours"') == 4 + 1  # four renew forms and the create form
    assert len(many) == len(one)
