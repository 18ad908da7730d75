"""The pipelines pages in a real headless Chromium, under the portal's Content-Security-Policy: the editor draws
the DAG and lists a problem by its path as you type; a run's page colours its steps as their jobs end (polled),
lists a foreach step's item jobs beside the graph, and a click on a step opens its job's page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from pipelines import services
from pipelines.models import Pipeline
from testing.asgi import signed_in
from testing.pipelines import jobs_of, save

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GRAPH = "document.getElementById('pipeline-graph').easyaiGraph"

SPEC = """\
name: fan
team: vision
params:
  tag: {type: string, default: t}
steps:
  - name: prepare
    outputs:
      parameters: {rows: model_dir/rows}
    job: {framework: batch, command: "echo {{params.tag}}", roles: {main: {}}}
  - name: train
    depends: [prepare]
    foreach: [1, 2]
    job: {framework: batch, command: "echo {{item}}", roles: {main: {}}}
  - name: report
    depends: [train]
    job: {framework: batch, command: "echo done", roles: {main: {}}}
"""


def watch_for_violations(page: Page) -> list[str]:
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    page.on("pageerror", lambda error: violations.append(str(error)))
    return violations


def node_ids(page: Page) -> list[str]:
    return page.evaluate(f"() => {GRAPH}.nodes().map(n => n.id())")


def node_state(page: Page, name: str) -> dict:
    return page.evaluate(
        f"(name) => {{ const n = {GRAPH}.getElementById(name);"
        " return {state: n.data('state'), colour: n.style('background-color')}; }",
        name,
    )


def wait_for_node(page: Page, name: str, state: str) -> None:
    page.wait_for_function(
        f"([name, state]) => {{ const g = {GRAPH}; return g && g.getElementById(name).data('state') === state; }}",
        arg=[name, state],
        timeout=20_000,
    )


def click_node(page: Page, name: str) -> None:
    page.locator("#pipeline-graph").scroll_into_view_if_needed()
    x, y = page.evaluate(
        f"(name) => {{ const g = {GRAPH}; const p = g.getElementById(name).renderedPosition();"
        " const r = document.getElementById('pipeline-graph').getBoundingClientRect();"
        " return [r.left + p.x, r.top + p.y]; }",
        name,
    )
    page.mouse.click(x, y)


def test_the_editor_draws_the_dag_and_shows_a_problem_as_you_type(page: Page, asgi_server, people, fake_backend):
    violations = watch_for_violations(page)
    signed_in(page, asgi_server, people["owner"])
    page.goto(f"{asgi_server.http_url}/pipelines/new/")
    # The example it starts with, checked and drawn.
    expect(page.locator("#pipeline-graph[data-nodes='4']")).to_have_count(1, timeout=15_000)
    expect(page.locator("#spec-status")).to_have_attribute("data-state", "ok")
    expect(page.locator("#spec-status")).to_have_text("Valid: 4 steps.")
    assert node_ids(page) == ["prepare", "train", "register", "report"]
    assert page.evaluate(f"() => {GRAPH}.edges().length") == 4

    editor = page.locator("textarea[name=source]")
    editor.fill(SPEC)
    expect(page.locator("#pipeline-graph[data-nodes='3']")).to_have_count(1, timeout=10_000)
    assert node_ids(page) == ["prepare", "train", "report"]

    # Typed at the end, key by key: a step whose name is not allowed, named by its path.
    editor.press("Control+End")
    editor.press_sequentially("  - name: Bad_Step\n")
    problem = page.locator("#spec-problems li[data-path='steps.3.name']")
    expect(problem).to_be_visible(timeout=10_000)
    expect(page.locator("#spec-status")).to_have_attribute("data-state", "bad")
    expect(page.locator("#pipeline-graph.stale")).to_have_count(1)
    assert node_ids(page) == ["prepare", "train", "report"]  # the last good graph stays

    # Fixed: the problem goes and the new step is drawn, joined to the one it depends on.
    editor.fill(
        SPEC + "  - name: notify\n    depends: [report]\n    job: {framework: batch, command: x, roles: {main: {}}}\n"
    )
    expect(page.locator("#pipeline-graph[data-nodes='4']")).to_have_count(1, timeout=10_000)
    expect(page.locator("#spec-problems")).to_be_hidden()
    assert page.evaluate(f"() => {GRAPH}.getElementById('report->notify').length") == 1

    page.get_by_role("button", name="Save as a new version").click()
    saved = Pipeline.objects.get(name="fan")
    expect(page).to_have_url(re.compile(rf"/pipelines/{saved.pk}/$"))
    expect(page.locator("#pipeline-graph[data-nodes='4']")).to_have_count(1, timeout=10_000)
    assert saved.latest == 1
    assert violations == []


def test_the_run_page_colours_steps_as_their_jobs_end_and_opens_a_steps_job(
    page: Page, asgi_server, people, fake_backend, drive
):
    owner = people["owner"]
    pipeline = save(owner, SPEC).pipeline
    run = services.run_submit(user=owner, pipeline=pipeline)
    drive.tick()
    [prepare] = jobs_of(run, "prepare")
    violations = watch_for_violations(page)
    signed_in(page, asgi_server, people["mate"])
    page.goto(f"{asgi_server.http_url}/pipelines/runs/{run.public_id}/")

    wait_for_node(page, "prepare", "running")
    assert node_state(page, "prepare")["colour"] == "rgb(13,110,253)"  # running: blue
    assert node_state(page, "train")["state"] == "waiting"
    expect(page.locator("tr[data-step='prepare']")).to_have_attribute("data-step-state", "running")

    # The job ends; the next poll colours it and its successor, without a reload.
    drive.end(prepare, files={"model_dir/rows": "12\n"})
    drive.tick()
    wait_for_node(page, "prepare", "success")
    wait_for_node(page, "train", "running")
    assert node_state(page, "prepare")["colour"] == "rgb(25,135,84)"  # success: green
    expect(page.locator("tr[data-step='train'] .step-jobs a")).to_have_count(2)

    # A foreach step lists its items' jobs beside the graph.
    click_node(page, "train")
    panel = page.locator("#step-panel")
    expect(panel).to_be_visible()
    items = [job.public_id for job in jobs_of(run, "train")]
    for item in items:
        expect(panel.get_by_role("link", name=re.compile(item))).to_be_visible()

    # One item fails: its step is failed (red), and what depends on it is skipped.
    first, second = jobs_of(run, "train")
    drive.end(first)
    drive.end(second, state="failed", exit_code=3)
    drive.tick(2)
    # The run ended: the page loads again, coloured as it ended, with its Retry button for the owner only.
    expect(page.locator("#run-state")).to_have_attribute("data-run-state", "failed", timeout=20_000)
    wait_for_node(page, "train", "failed")
    wait_for_node(page, "report", "skipped")
    assert node_state(page, "train")["colour"] == "rgb(220,53,69)"  # failed: red
    expect(page.locator("[data-action='retry']")).to_have_count(0)
    expect(page.locator("tr[data-step='prepare'] [data-output='rows']")).to_have_text("12")

    # A click on a plain step opens its job's page.
    click_node(page, "prepare")
    expect(page).to_have_url(re.compile(rf"/jobs/{prepare.public_id}/$"), timeout=10_000)
    assert violations == []
