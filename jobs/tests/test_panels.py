"""Panels an app above jobs adds to the job page: shown in order, with the context the app gives for the job,
and left out for a job the app has nothing to show for."""

from __future__ import annotations

import copy

import pytest
from django.test import Client

from jobs import panels


@pytest.fixture
def panel_templates(settings, tmp_path):
    """Two panel templates in a folder of the test's own."""
    (tmp_path / "test_panels").mkdir()
    (tmp_path / "test_panels" / "first.html").write_text('<p id="first">first: {{ panel.word }}</p>')
    (tmp_path / "test_panels" / "second.html").write_text('<p id="second">second for {{ panel.job_id }}</p>')
    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["DIRS"] = [*templates[0]["DIRS"], tmp_path]
    settings.TEMPLATES = templates
    saved = dict(panels._panels)
    panels._panels.clear()
    yield
    panels._panels.clear()
    panels._panels.update(saved)


@pytest.fixture
def job(owner, fake_backend, submit):
    return submit(owner)


def test_registered_panels_render_on_the_job_page_in_order(panel_templates, job, mate):
    seen = []

    def second(request, job):
        seen.append((request.user.username, job.public_id))
        return {"job_id": job.public_id}

    panels.register("first", "test_panels/first.html", lambda request, job: {"word": "hello"})
    panels.register("second", "test_panels/second.html", second)
    client = Client()
    client.force_login(mate)
    page = client.get(f"/jobs/{job.public_id}/").content.decode()
    assert '<div id="job-panel-first"><p id="first">first: hello</p></div>' in page
    assert f'<p id="second">second for {job.public_id}</p>' in page
    assert page.index('id="job-panel-first"') < page.index('id="job-panel-second"') < page.index('id="task-panels"')
    assert seen == [("mate", job.public_id)]


def test_a_panel_with_nothing_for_the_job_is_left_out(panel_templates, job, owner):
    panels.register("first", "test_panels/first.html", lambda request, job: None)
    client = Client()
    client.force_login(owner)
    page = client.get(f"/jobs/{job.public_id}/").content.decode()
    assert "job-panel-first" not in page


def test_an_outsider_never_reaches_a_panels_context(panel_templates, job, outsider):
    def refuse(request, job):
        raise AssertionError("the page must check the viewer first")

    panels.register("first", "test_panels/first.html", refuse)
    client = Client()
    client.force_login(outsider)
    assert client.get(f"/jobs/{job.public_id}/").status_code == 404
