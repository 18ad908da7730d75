"""Team provisioning on Kubernetes clusters, against the fake API server."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from clusters import services, tasks
from clusters.backends.kubernetes.schema_check import validate_manifest
from clusters.models import Cluster, Quota
from teams.models import Team
from teams.signals import team_changed
from testing.fakekube import make_cluster

pytestmark = pytest.mark.django_db


QUEUES = ("scheduling.volcano.sh", "v1beta1", "queues")


def test_provision_creates_namespace_quota_and_queue(fake_kube, team):
    cluster = make_cluster(fake_kube, scheduler=Cluster.Scheduler.VOLCANO)
    Quota.objects.create(team=team, cluster=cluster, cpu_milli=32000, memory_bytes=128 * 2**30, gpu=4)
    services.team_provision(cluster=cluster, team=team)
    namespace = fake_kube.get("", "v1", "namespaces", "", "easyai-vision")
    assert namespace["metadata"]["labels"]["easyai.io/team"] == "vision"
    quota = fake_kube.get("", "v1", "resourcequotas", "easyai-vision", "easyai-quota")
    assert quota["spec"]["hard"] == {
        "requests.cpu": "32", "limits.cpu": "32", "requests.memory": str(128 * 2**30),
        "limits.memory": str(128 * 2**30), "requests.nvidia.com/gpu": "4",
    }  # fmt: skip
    queue = fake_kube.get(*QUEUES, "", "easyai-vision")
    assert queue["spec"]["capability"] == {"cpu": "32", "memory": str(128 * 2**30), "nvidia.com/gpu": "4"}
    assert {p["metadata"]["name"] for p in fake_kube.of_kind("scheduling.k8s.io", "v1", "priorityclasses")} == {
        "easyai-low", "easyai-normal", "easyai-high"}  # fmt: skip
    for obj in (namespace, quota, queue):
        assert validate_manifest({k: v for k, v in obj.items() if k != "status"}) == []


def test_provision_again_applies_a_changed_quota(fake_kube, team):
    cluster = make_cluster(fake_kube, scheduler=Cluster.Scheduler.VOLCANO)
    quota = Quota.objects.create(team=team, cluster=cluster, cpu_milli=8000, memory_bytes=2**30, gpu=0)
    services.team_provision(cluster=cluster, team=team)
    quota.gpu = 2
    quota.save()
    fake_kube.clear_journal()
    services.team_provision(cluster=cluster, team=team)
    assert fake_kube.get("", "v1", "resourcequotas", "easyai-vision", "easyai-quota")["spec"]["hard"][
        "requests.nvidia.com/gpu"] == "2"  # fmt: skip
    assert fake_kube.get(*QUEUES, "", "easyai-vision")["spec"]["capability"]["nvidia.com/gpu"] == "2"
    assert [r.status for r in fake_kube.requests("POST")] == [409, 409, 409, 409, 409, 409]
    assert {r.path for r in fake_kube.requests("PUT")} == {
        "/api/v1/namespaces/easyai-vision/resourcequotas/easyai-quota",
        "/apis/scheduling.volcano.sh/v1beta1/queues/easyai-vision",
    }


def test_no_quota_row_means_no_quota_and_no_queue_without_volcano(fake_kube, team):
    cluster = make_cluster(fake_kube)
    quota = Quota.objects.create(team=team, cluster=cluster, cpu_milli=1000, memory_bytes=2**30, gpu=0)
    services.team_provision(cluster=cluster, team=team)
    quota.delete()
    services.team_provision(cluster=cluster, team=team)
    assert fake_kube.get("", "v1", "resourcequotas", "easyai-vision", "easyai-quota") is None
    assert fake_kube.of_kind(*QUEUES) == []


def test_team_changed_provisions_on_every_enabled_kubernetes_cluster(fake_kube, team):
    first = make_cluster(fake_kube, name="a", namespace_prefix="a-")
    make_cluster(fake_kube, name="b", namespace_prefix="b-", enabled=False)
    Cluster.objects.create(name="laptop", kind=Cluster.Kind.LOCAL)
    Quota.objects.create(team=team, cluster=first, cpu_milli=1000, memory_bytes=2**30, gpu=0)
    team_changed.send(sender=Team, team_id=team.pk)  # Q_CLUSTER sync in tests: the task runs now
    names = {o["metadata"]["name"] for o in fake_kube.of_kind("", "v1", "namespaces")}
    assert "a-vision" in names and "b-vision" not in names
    assert fake_kube.get("", "v1", "resourcequotas", "a-vision", "easyai-quota") is not None


def test_provision_task_reports_a_refusing_cluster(fake_kube, team):
    make_cluster(fake_kube)
    fake_kube.fail("POST", r"/api/v1/namespaces$", 403, message="forbidden: cannot create namespaces")
    with pytest.raises(RuntimeError, match="cannot create namespaces"):
        tasks.provision_team_task(team.pk)
    assert not Cluster.objects.get(name="gpu-a").healthy
    assert tasks.provision_team_task(team.pk) == {"gpu-a": ""}


# --- saving a cluster through the service --------------------------------------------------------


def test_saving_a_new_cluster_provisions_every_team_after_commit(fake_kube, team, other_team,
                                                                 django_capture_on_commit_callbacks):  # fmt: skip
    import yaml

    cluster = Cluster(name="gpu-n", kind=Cluster.Kind.KUBERNETES, namespace_prefix="n-",
                      settings={"request_timeout": 1})  # fmt: skip
    cluster.kubeconfig = yaml.safe_dump(fake_kube.kubeconfig())
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert services.cluster_save(cluster=cluster) is True
        assert fake_kube.requests() == []  # the cluster is called after commit, by the task
    assert len(callbacks) == 1
    names = {o["metadata"]["name"] for o in fake_kube.of_kind("", "v1", "namespaces")}
    assert {"n-vision", "n-speech"} <= names


def test_an_invalid_cluster_is_refused_and_nothing_is_queued(team, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(ValidationError) as refused:
        services.cluster_save(cluster=Cluster(name="not a slug", kind=Cluster.Kind.KUBERNETES, in_cluster=True))
    assert "name" in refused.value.message_dict
    assert not callbacks and not Cluster.objects.exists()


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (None, {}, True),  # a new enabled Kubernetes cluster
        (None, {"enabled": False}, False),
        (None, {"kind": Cluster.Kind.LOCAL}, False),
        ({}, {}, False),  # saved again unchanged
        ({}, {"description": "racks"}, False),
        ({}, {"nfs_server": "nfs2.example.org"}, False),
        ({"enabled": False}, {}, True),  # enabled now
        ({}, {"enabled": False}, False),  # disabled now
        ({"kind": Cluster.Kind.LOCAL}, {}, True),  # became a Kubernetes cluster
        ({}, {"namespace_prefix": "b-"}, True),
        ({}, {"scheduler": Cluster.Scheduler.VOLCANO}, True),
        ({}, {"in_cluster": True}, True),
        ({}, {"kubeconfig_encrypted": "another"}, True),
    ],
)
def test_which_changes_need_provisioning(before, after, expected):
    base = {"kind": Cluster.Kind.KUBERNETES, "enabled": True, "namespace_prefix": "a-",
            "scheduler": Cluster.Scheduler.DEFAULT, "kubeconfig_encrypted": "sealed", "in_cluster": False}  # fmt: skip
    row = None if before is None else {**base, **before}
    cluster = Cluster(name="gpu-a", **{**base, **after})
    assert services.needs_provisioning(row, cluster) is expected


def test_a_backend_is_handed_the_team_and_its_quota_on_that_cluster(fake_backend, team, other_team):
    from clusters.backends.base import TeamDescription, TeamQuota

    Quota.objects.create(team=team, cluster=fake_backend.cluster, cpu_milli=2000, memory_bytes=2**30, gpu=1)
    services.team_provision(cluster=fake_backend.cluster, team=team)
    services.team_provision(cluster=fake_backend.cluster, team=other_team)
    assert [call for call in fake_backend.calls if call[0] == "provision_team"] == [
        ("provision_team", TeamDescription(slug="vision", quota=TeamQuota(2000, 2**30, 1))),
        ("provision_team", TeamDescription(slug="speech", quota=None)),  # no row: no limit
    ]


def test_the_clusters_app_listens_to_team_changes():
    import weakref

    from teams.signals import team_changed

    refs = [entry[1] for entry in team_changed.receivers]
    receivers = [ref() if isinstance(ref, weakref.ReferenceType) else ref for ref in refs]
    assert services.team_changed_received in receivers


def test_a_quota_added_on_the_teams_admin_page_reaches_provisioning(
    admin_client, team, fake_backend, django_capture_on_commit_callbacks
):
    from teams.signals import team_changed

    heard: list[int] = []
    team_changed.connect(lambda sender, team_id, **kwargs: heard.append(team_id), weak=False, dispatch_uid="heard")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(
                f"/admin/teams/team/{team.pk}/change/",
                {
                    "name": team.name,
                    "notebook_max_lease_hours": "72",
                    "memberships-TOTAL_FORMS": "0",
                    "memberships-INITIAL_FORMS": "0",
                    "quotas-TOTAL_FORMS": "1",
                    "quotas-INITIAL_FORMS": "0",
                    "quotas-0-cluster": fake_backend.cluster.pk,
                    "quotas-0-cpu_milli": "3000",
                    "quotas-0-memory_bytes": str(2**30),
                    "quotas-0-gpu": "0",
                },
            )
    finally:
        team_changed.disconnect(dispatch_uid="heard")
    assert response.status_code == 302
    assert Quota.objects.get(team=team).cpu_milli == 3000
    assert heard == [team.pk]
