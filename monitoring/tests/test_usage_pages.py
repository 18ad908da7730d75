"""The Usage page (/usage/): who sees what, its figures, charts' data, quota, CSV and bad parameters; the admin's
prices (validated) and accounting (read-only); the charts drawn in a real headless browser."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from clusters.models import Cluster, Quota
from jobs.models import Job
from monitoring.models import JobUsage, Price
from teams.models import Membership

RANGE = "from=2026-11-01&to=2026-11-30"


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def cluster(db) -> Cluster:
    return Cluster.objects.create(name="gpus", kind="local")


@pytest.fixture
def add_usage(cluster):
    def add(user, team, day: date, cost: str, *, state: str = "success", name: str = "train", **held) -> Job:
        job = Job.objects.create(
            name=name, team=team, owner=user, cluster=cluster, framework="batch", spec={}, state=state, **held
        )
        JobUsage.objects.create(
            job=job, team=team, owner=user, cluster=cluster, day=day, running_seconds=7200, core_hours_requested=4,
            core_hours_used=1, gib_hours_requested=8, gib_hours_used=6, gpu_hours_requested=2, gpu_hours_used=1.5,
            cost=Decimal(cost), currency="EUR",
        )  # fmt: skip
        return job

    return add


@pytest.fixture
def usage(add_usage, owner, mate, outsider, team, other_team) -> dict[str, Job]:
    return {
        "owner": add_usage(owner, team, date(2026, 11, 2), "1.50"),
        "mate": add_usage(mate, team, date(2026, 11, 5), "20.25", name="big-sweep"),
        "speech": add_usage(outsider, other_team, date(2026, 11, 2), "99.00", name="speech-secret"),
    }


def chart_data(response) -> dict:
    text = response.content.decode()
    found = re.search(r'<script id="usage-data" type="application/json">(.*?)</script>', text, re.S)
    assert found, "no embedded chart data"
    return json.loads(found.group(1))


@pytest.mark.parametrize("who", ["owner", "mate", "team_admin"])
def test_team_members_see_their_teams_usage(people, usage, who):
    response = signed_in(people[who]).get(f"/usage/?{RANGE}")

    assert response.status_code == 200
    text = response.content.decode()
    assert 'id="usage-total-cost">21.75 EUR' in text
    assert usage["mate"].public_id in text and "big-sweep" in text  # among the most costly jobs
    assert "speech-secret" not in text and "99.00" not in text
    data = chart_data(response)
    assert data["currency"] == "EUR"
    assert len(data["time"]) == 30 and data["time"][0]["label"] == "2026-11-01"
    assert [(point["label"], point["cost"]) for point in data["time"] if point["cost"]] == [
        ("2026-11-02", 1.5),
        ("2026-11-05", 20.25),
    ]
    assert [(user["label"], user["cost"]) for user in data["users"]] == [("mate", 20.25), ("owner", 1.5)]


def test_the_charts_come_from_static_files_not_inline_script(owner, usage):
    text = signed_in(owner).get(f"/usage/?{RANGE}").content.decode()

    assert "vendor/chartjs/chart.umd.min.js" in text and "easyai/usage.js" in text
    for script in re.findall(r"<script([^>]*)>(.*?)</script>", text, re.S):
        attributes, body = script
        assert 'type="application/json"' in attributes or not body.strip(), script


def test_an_outsider_gets_404_for_another_team(outsider, usage):
    assert signed_in(outsider).get(f"/usage/?team=vision&{RANGE}").status_code == 404
    own = signed_in(outsider).get(f"/usage/?{RANGE}")
    assert own.status_code == 200 and "99.00 EUR" in own.content.decode()


def test_a_platform_admin_sees_all_teams_and_picks_any(staff, usage):
    response = signed_in(staff).get(f"/usage/?team=all&{RANGE}&group_by=user")

    text = response.content.decode()
    assert response.status_code == 200
    assert 'id="usage-total-cost">120.75 EUR' in text
    assert '<option value="all" selected>All teams</option>' in text
    assert "outsider" in text and "speech-secret" in text
    assert (
        'id="usage-total-cost">1.50 EUR'
        in signed_in(staff).get("/usage/?team=vision&from=2026-11-01&to=2026-11-03").content.decode()
    )


def test_a_member_of_several_teams_picks_one_or_all(owner, other_team, usage):
    Membership.objects.create(team=other_team, user=owner, role=Membership.Role.MEMBER)

    text = signed_in(owner).get(f"/usage/?team=speech&{RANGE}").content.decode()

    assert '<option value="speech" selected>' in text and '<option value="all">All my teams</option>' in text
    assert 'id="usage-total-cost">99.00 EUR' in text
    assert 'id="usage-total-cost">120.75 EUR' in signed_in(owner).get(f"/usage/?team=all&{RANGE}").content.decode()


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ("day", ["2026-11-02", "2026-11-05"]),
        ("month", ["2026-11"]),
        ("user", ["mate", "owner"]),
        ("job", ["big-sweep", "train"]),
    ],
)
def test_the_table_is_grouped_as_asked(owner, usage, group_by, expected):
    text = signed_in(owner).get(f"/usage/?{RANGE}&group_by={group_by}").content.decode()

    table = text.split('id="usage-rows"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    cells = [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)
    ]
    column = 1 if group_by == "job" else 0
    assert [row[column] for row in cells] == expected


def test_the_page_shows_the_quota_against_what_the_team_holds_now(owner, team, cluster, usage, add_usage):
    Quota.objects.create(team=team, cluster=cluster, cpu_milli=8000, memory_bytes=32 << 30, gpu=4)
    add_usage(owner, team, date(2026, 11, 6), "0", state="running", cpu_milli=2500, memory_bytes=4 << 30, gpu=1)

    text = signed_in(owner).get(f"/usage/?{RANGE}").content.decode()

    quota = re.sub(r"\s+", " ", text.split('id="usage-quota"', 1)[1].split("</table>", 1)[0])
    assert "gpus" in quota and "2.5 / 8" in quota and "4 / 32" in quota and "1 / 4" in quota


def test_the_page_offers_and_serves_a_csv(owner, usage):
    page = signed_in(owner).get(f"/usage/?{RANGE}&group_by=user").content.decode()
    link = re.search(r'href="\?([^"]+)" id="usage-csv"', page).group(1).replace("&amp;", "&")
    assert link == "team=vision&from=2026-11-01&to=2026-11-30&group_by=user&format=csv"

    response = signed_in(owner).get(f"/usage/?{link}")

    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(row["user"], row["cost"], row["cpu_efficiency"]) for row in rows] == [
        ("mate", "20.25", "0.25"),
        ("owner", "1.5", "0.25"),
    ]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("from=2026-02-30", "from"),
        ("to=soon", "to"),
        ("from=2026-12-01&to=2026-11-01", "from"),
        ("group_by=x", "group_by"),
    ],
)
def test_a_bad_parameter_is_a_400_that_names_it(owner, usage, query, param):
    response = signed_in(owner).get(f"/usage/?{query}")

    assert response.status_code == 400
    text = response.content.decode()
    assert f'id="usage-error">{param}: ' in text
    assert 'id="usage-filters"' in text  # the form stays, to correct it


def test_the_page_takes_the_same_queries_for_many_jobs(owner, team, usage, add_usage):
    client = signed_in(owner)
    client.get(f"/usage/?{RANGE}")

    def count(group_by: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/usage/?{RANGE}&group_by={group_by}").status_code == 200
        return len(captured)

    before = {group: count(group) for group in ("day", "job")}
    for day in range(25):
        add_usage(owner, team, date(2026, 11, 1) + timedelta(days=day), "2.00")
    assert {group: count(group) for group in ("day", "job")} == before
    assert max(before.values()) <= 20


def test_the_navigation_links_to_the_usage_page(owner, usage):
    assert '<a class="nav-link" href="/usage/">Usage</a>' in signed_in(owner).get("/jobs/").content.decode()


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get("/usage/")
    assert response.status_code == 302 and "login" in response["Location"]


# --- the admin ---------------------------------------------------------------------------------------------


@pytest.fixture
def operator(make_user):
    return make_user("operator", is_staff=True, is_superuser=True)


def _price_form(cluster, **changes) -> dict:
    form = {
        "cluster": cluster.pk, "currency": "usd", "core_hour": "0.05", "gib_hour": "0.01", "gpu_hour": "2",
        "gpu_hour_by_model": '{"A100-SXM4-80GB": 3.2, "T4": 0.5}',
    }  # fmt: skip
    form.update(changes)
    return form


def test_a_platform_admin_sets_a_clusters_prices(operator, cluster):
    response = signed_in(operator).post("/admin/monitoring/price/add/", _price_form(cluster))

    assert response.status_code == 302, response.content.decode()[-2000:]
    price = Price.objects.get(cluster=cluster)
    assert (price.currency, price.core_hour, price.gpu_hour) == ("USD", Decimal("0.05"), Decimal("2"))
    assert price.gpu_hour_by_model == {"A100-SXM4-80GB": 3.2, "T4": 0.5}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("core_hour", "-1", "A price cannot be negative."),
        ("gpu_hour", "-0.5", "A price cannot be negative."),
        ("gpu_hour_by_model", "[1, 2]", "A mapping of GPU model to price"),
        ("gpu_hour_by_model", '{"A100": -3}', "A100: a price cannot be negative."),
        ("gpu_hour_by_model", '{"A100": "cheap"}', "A100: &#x27;cheap&#x27; is not a number."),
        ("currency", "US$", "Letters only"),
    ],
)
def test_bad_prices_are_refused_at_their_field(operator, cluster, field, value, message):
    response = signed_in(operator).post("/admin/monitoring/price/add/", _price_form(cluster, **{field: value}))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Price.objects.exists()


def test_the_accounting_is_read_only_in_the_admin(operator, usage):
    client = signed_in(operator)

    listing = client.get("/admin/monitoring/jobusage/")
    assert listing.status_code == 200 and usage["mate"].public_id in listing.content.decode()
    assert client.get("/admin/monitoring/jobusage/add/").status_code == 403
    row = JobUsage.objects.get(job=usage["mate"])
    change = client.post(f"/admin/monitoring/jobusage/{row.pk}/change/", {"cost": "0"})
    assert change.status_code == 403
    row.refresh_from_db()
    assert row.cost == Decimal("20.25")


# --- in a real browser ---------------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.slow
def test_the_charts_draw_the_figures_in_a_browser(page, asgi_server, owner, usage):
    from playwright.sync_api import expect

    from testing.asgi import signed_in as browser_signed_in

    problems: list[str] = []
    page.on(
        "console",
        lambda message: problems.append(message.text) if "Content Security Policy" in message.text else None,
    )
    page.on("response", lambda answer: problems.append(answer.url) if answer.status >= 400 else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    browser_signed_in(page, asgi_server, owner)
    response = page.goto(f"{asgi_server.http_url}/usage/?{RANGE}")
    assert "script-src 'self'" in response.headers["content-security-policy"]

    expect(page.locator("#usage-time-chart")).to_be_visible()
    page.wait_for_function("window.easyaiUsageCharts && window.easyaiUsageCharts.time !== null")
    drawn = page.evaluate(
        """() => {
            const charts = window.easyaiUsageCharts;
            const time = charts.time.data.datasets[0].data.filter((value) => value > 0);
            const users = charts.users.data.labels;
            const canvas = document.getElementById("usage-time-chart");
            return {time, users, width: canvas.width, height: canvas.height};
        }"""
    )
    assert drawn["time"] == [1.5, 20.25] and drawn["users"] == ["mate", "owner"]
    assert drawn["width"] > 100 and drawn["height"] > 100
    assert problems == []  # nothing refused by the Content-Security-Policy, no script error, no file missing


@pytest.mark.parametrize("query", ["to=9999-12-31", "from=0001-01-01&to=0001-01-03", "to=0001-01-05&group_by=month"])
def test_the_calendars_ends_show_an_empty_page_not_a_server_error(owner, usage, query):
    response = signed_in(owner).get(f"/usage/?{query}")
    assert response.status_code == 200
    assert 'id="usage-rows-empty"' in response.content.decode()


def test_a_low_efficiency_is_flagged_on_its_own(owner, usage):
    text = signed_in(owner).get(f"/usage/?{RANGE}&group_by=user").content.decode()

    rows = text.split('id="usage-rows"', 1)[1]
    # CPU used 1 of 4 core-hours (25 %): flagged; memory 6 of 8 and GPU 1.5 of 2 (75 %): not.
    assert '<span class="text-warning">25 %</span> · 75 % · 75 %' in rows
