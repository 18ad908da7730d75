"""The team page shows each quota with what the team's jobs hold now against it (jobs tells teams, through
teams/quota_usage.py)."""

from __future__ import annotations

import re

import pytest

from clusters.models import Cluster, Quota
from jobs.models import Job
from jobs.state import JobState

pytestmark = pytest.mark.django_db


def job(team, owner, cluster, state, cpu_milli, memory_gib, gpu) -> Job:
    return Job.objects.create(
        name="train", team=team, owner=owner, cluster=cluster, framework="pytorch", spec={}, state=state,
        cpu_milli=cpu_milli, memory_bytes=memory_gib * 2**30, gpu=gpu,
    )  # fmt: skip


def cells(html: str, cluster: str) -> list[str]:
    row = html.split(f'data-cluster="{cluster}"', 1)[1].split("</tr>", 1)[0]
    return [re.sub(r"\s+", " ", text).strip() for text in re.findall(r'<span class="text-nowrap">(.*?)</span>', row)]


def test_the_team_page_shows_quota_used_against_quota(people, page, team, other_team):
    gpu_a = Cluster.objects.create(name="gpu-a", kind=Cluster.Kind.KUBERNETES)
    gpu_b = Cluster.objects.create(name="gpu-b", kind=Cluster.Kind.KUBERNETES)
    Quota.objects.create(team=team, cluster=gpu_a, cpu_milli=4000, memory_bytes=16 * 2**30, gpu=2)
    Quota.objects.create(team=team, cluster=gpu_b, cpu_milli=8000, memory_bytes=32 * 2**30, gpu=0)
    owner = people["owner"]
    job(team, owner, gpu_a, JobState.RUNNING, 2500, 8, 1)
    job(team, owner, gpu_a, JobState.PENDING, 500, 2, 1)
    job(team, owner, gpu_a, JobState.SUCCESS, 4000, 16, 2)  # ended: holds nothing
    job(other_team, people["outsider"], gpu_a, JobState.RUNNING, 1000, 1, 0)  # another team's

    html = page(people["mate"]).get("/teams/vision/").content.decode()
    assert cells(html, "gpu-a") == ["3 of 4", "10 of 16", "2 of 2"]
    assert cells(html, "gpu-b") == ["0 of 8", "0 of 32", "0 of 0"]
    assert "Used now" in html
