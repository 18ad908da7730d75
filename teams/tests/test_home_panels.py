"""Panels the apps above teams add to the home page (teams.dashboard): rendered in order in their column for the
user's current team, left out when they have nothing to show, and none for a user in no team."""

from __future__ import annotations

import copy

import pytest

from teams import dashboard


@pytest.fixture
def panel_templates(settings, tmp_path):
    (tmp_path / "test_home").mkdir()
    (tmp_path / "test_home" / "panel.html").write_text('<p class="test-panel">{{ panel.text }}</p>')
    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["DIRS"] = [*templates[0]["DIRS"], tmp_path]
    settings.TEMPLATES = templates
    saved = dict(dashboard._panels)
    dashboard._panels.clear()
    yield "test_home/panel.html"
    dashboard._panels.clear()
    dashboard._panels.update(saved)


def test_home_renders_the_registered_panels_in_their_columns_for_the_current_team(panel_templates, people, page):
    seen = []

    def main(request, team):
        seen.append((request.user.username, team.slug))
        return {"text": f"main for {team.slug}"}

    dashboard.register("first", panel_templates, main)
    dashboard.register("aside", panel_templates, lambda request, team: {"text": "aside"}, column=dashboard.SIDE)
    dashboard.register("top", panel_templates, lambda request, team: {"text": "top"}, column=dashboard.SIDE, order=1)
    dashboard.register("second", panel_templates, lambda request, team: {"text": "second"})
    dashboard.register("nothing", panel_templates, lambda request, team: None)
    content = page(people["mate"]).get("/").content.decode()
    assert '<div id="dashboard-first"><p class="test-panel">main for vision</p></div>' in content
    assert (
        content.index('id="dashboard-first"')
        < content.index('id="dashboard-second"')
        < content.index('id="dashboard-top"')
        < content.index('id="dashboard-aside"')
    )
    assert 'id="dashboard-nothing"' not in content
    assert seen == [("mate", "vision")]


def test_a_user_in_no_team_gets_no_panels(panel_templates, make_user, page):
    dashboard.register("first", panel_templates, lambda request, team: {"text": "never"})
    content = page(make_user("lonely")).get("/").content.decode()
    assert "never" not in content and "no team yet" in content


def test_a_panel_names_its_column():
    with pytest.raises(ValueError, match="column"):
        dashboard.register("odd", "x.html", lambda request, team: None, column="footer")
