"""The cluster admin: kubeconfig stored encrypted and never shown; check connection against the fake server."""

from __future__ import annotations

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from clusters.admin import kubeconfig_status
from clusters.models import Cluster
from testing.fakekube import FakeKube, make_cluster

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-123456789")
    client.force_login(user)
    return client


def add_form(**fields):
    data = {"name": "gpu-a", "kind": "kubernetes", "enabled": "on", "description": "", "settings": "{}",
            "namespace_prefix": "easyai-", "nfs_server": "", "nfs_path": "", "gpu_resource_name": "nvidia.com/gpu",
            "scheduler": "default", "image_pull_secrets": "[]", "ingress_host": ""}  # fmt: skip
    data.update(fields)
    return data


def test_pasted_kubeconfig_is_stored_encrypted_and_never_shown(admin_client, fake_kube):
    secret = yaml.safe_dump(fake_kube.kubeconfig())
    response = admin_client.post(reverse("admin:clusters_cluster_add"), add_form(kubeconfig_text=secret))
    assert response.status_code == 302, response.content
    cluster = Cluster.objects.get(name="gpu-a")
    stored = Cluster.objects.filter(pk=cluster.pk).values_list("kubeconfig_encrypted", flat=True).get()
    assert stored and fake_kube.token not in stored and "clusters:" not in stored
    assert yaml.safe_load(cluster.kubeconfig) == fake_kube.kubeconfig()
    page = admin_client.get(reverse("admin:clusters_cluster_change", args=[cluster.pk])).content.decode()
    assert fake_kube.token not in page and stored not in page
    assert f"set (server {fake_kube.url})" in page


def test_uploaded_kubeconfig_is_stored_and_an_empty_edit_keeps_it(admin_client, fake_kube):
    upload = SimpleUploadedFile("config", yaml.safe_dump(fake_kube.kubeconfig()).encode())
    admin_client.post(reverse("admin:clusters_cluster_add"), add_form(kubeconfig_file=upload))
    cluster = Cluster.objects.get(name="gpu-a")
    before = cluster.kubeconfig_encrypted
    assert before
    response = admin_client.post(reverse("admin:clusters_cluster_change", args=[cluster.pk]),
                                 add_form(nfs_server="nfs.example.org", nfs_path="/export"))  # fmt: skip
    assert response.status_code == 302
    cluster.refresh_from_db()
    assert cluster.kubeconfig_encrypted == before and cluster.nfs_server == "nfs.example.org"


def test_a_kubernetes_cluster_needs_a_kubeconfig_or_in_cluster(admin_client):
    response = admin_client.post(reverse("admin:clusters_cluster_add"), add_form())
    assert response.status_code == 200 and b"needs a kubeconfig" in response.content
    response = admin_client.post(reverse("admin:clusters_cluster_add"), add_form(kubeconfig_text="just: text"))
    assert b"clusters, users and contexts" in response.content
    assert not Cluster.objects.exists()
    response = admin_client.post(reverse("admin:clusters_cluster_add"), add_form(in_cluster="on"))
    assert response.status_code == 302


def test_local_clusters_share_the_admin(admin_client):
    Cluster.objects.create(name="laptop", kind=Cluster.Kind.LOCAL, settings={"gpu": 0})
    page = admin_client.get(reverse("admin:clusters_cluster_changelist")).content.decode()
    assert "laptop" in page
    assert kubeconfig_status(Cluster.objects.get(name="laptop")) == "not set"


def test_check_connection_reports_version_and_crds(admin_client, fake_kube):
    cluster = make_cluster(fake_kube)
    response = admin_client.post(reverse("admin:clusters_cluster_changelist"),
                                 {"action": "check_connection", "_selected_action": [cluster.pk]}, follow=True)  # fmt: skip
    text = response.content.decode()
    assert "Kubernetes v1.29.4" in text and "pytorchjobs.kubeflow.org" in text and "jobs.batch.volcano.sh" in text
    assert "KServe: not installed" in text
    cluster.refresh_from_db()
    assert cluster.healthy and cluster.server_version == "v1.29.4" and cluster.health_checked_at
    assert "pytorchjobs.kubeflow.org" in cluster.health_message


def test_check_connection_warns_outside_the_tested_versions(admin_client, fake_kube):
    fake_kube.version = "v1.33.1"
    cluster = make_cluster(fake_kube)
    response = admin_client.post(reverse("admin:clusters_cluster_changelist"),
                                 {"action": "check_connection", "_selected_action": [cluster.pk]}, follow=True)  # fmt: skip
    assert "outside the tested range 1.18–1.30" in response.content.decode()


def test_check_connection_records_a_refusal(admin_client, fake_kube):
    cluster = make_cluster(fake_kube)
    fake_kube.token = "revoked"
    admin_client.post(reverse("admin:clusters_cluster_changelist"),
                      {"action": "check_connection", "_selected_action": [cluster.pk]})  # fmt: skip
    cluster.refresh_from_db()
    assert not cluster.healthy and "401" in cluster.health_message
    page = admin_client.get(reverse("admin:clusters_cluster_changelist")).content.decode()
    assert "icon-no.svg" in page  # health shown in the list


# --- saving a cluster provisions every team on it ----------------------------------------------

NAMESPACES = ("", "v1", "namespaces")
QUEUES = ("scheduling.volcano.sh", "v1beta1", "queues")


def namespace_names(fake: FakeKube) -> set[str]:
    return {obj["metadata"]["name"] for obj in fake.of_kind(*NAMESPACES)}


def change(admin_client, cluster: Cluster, **fields):
    """Post the cluster's change form as the admin would, with the fields given changed."""
    data = add_form(name=cluster.name, namespace_prefix=cluster.namespace_prefix, scheduler=cluster.scheduler,
                    description=cluster.description)  # fmt: skip
    data.update(fields)
    data = {key: value for key, value in data.items() if value is not None}  # None: an unticked box
    return admin_client.post(reverse("admin:clusters_cluster_change", args=[cluster.pk]), data, follow=True)


def test_adding_a_cluster_provisions_every_team_after_the_save(
    admin_client, fake_kube, team, other_team, django_capture_on_commit_callbacks
):
    secret = yaml.safe_dump(fake_kube.kubeconfig())
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client.post(reverse("admin:clusters_cluster_add"),
                                     add_form(namespace_prefix="gpu-", kubeconfig_text=secret), follow=True)  # fmt: skip
        assert response.status_code == 200
        assert not fake_kube.requests()  # nothing reached the cluster inside the request's transaction
    assert len(callbacks) == 1
    assert {"gpu-vision", "gpu-speech"} <= namespace_names(fake_kube)
    assert "Gpu-a: provisioning of every team (namespace, quota, queue) queued." in response.content.decode()


def test_a_new_prefix_puts_namespace_and_quota_under_it(admin_client, fake_kube, team,
                                                        django_capture_on_commit_callbacks):  # fmt: skip
    from clusters.models import Quota

    cluster = make_cluster(fake_kube, namespace_prefix="old-")
    Quota.objects.create(team=team, cluster=cluster, cpu_milli=16000, memory_bytes=64 * 2**30, gpu=2)
    assert "old-vision" not in namespace_names(fake_kube)
    with django_capture_on_commit_callbacks(execute=True):
        response = change(admin_client, cluster, namespace_prefix="new-")
    assert response.status_code == 200
    assert "new-vision" in namespace_names(fake_kube)
    quota = fake_kube.get("", "v1", "resourcequotas", "new-vision", "easyai-quota")
    assert quota is not None and quota["spec"]["hard"]["requests.cpu"] == "16"
    assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "2"


def test_switching_to_volcano_creates_the_teams_queue(admin_client, fake_kube, team,
                                                      django_capture_on_commit_callbacks):  # fmt: skip
    cluster = make_cluster(fake_kube)
    assert fake_kube.of_kind(*QUEUES) == []
    with django_capture_on_commit_callbacks(execute=True):
        change(admin_client, cluster, scheduler="volcano")
    assert fake_kube.get(*QUEUES, "", "easyai-vision") is not None


def test_enabling_a_disabled_cluster_provisions_it_and_disabling_does_not(
    admin_client, fake_kube, team, django_capture_on_commit_callbacks
):
    cluster = make_cluster(fake_kube, namespace_prefix="b-", enabled=False)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        change(admin_client, cluster, enabled=None)  # still disabled
    assert not callbacks and not fake_kube.requests()
    with django_capture_on_commit_callbacks(execute=True):
        change(admin_client, cluster, enabled="on")
    assert "b-vision" in namespace_names(fake_kube)
    fake_kube.clear_journal()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        change(admin_client, cluster, enabled=None)
    assert not callbacks and not fake_kube.requests()


def test_a_change_that_moves_nothing_provisions_nothing(admin_client, fake_kube, team,
                                                        django_capture_on_commit_callbacks):  # fmt: skip
    cluster = make_cluster(fake_kube)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = change(admin_client, cluster, description="the A100 racks", nfs_server="nfs.example.org",
                          nfs_path="/export")  # fmt: skip
    assert response.status_code == 200 and Cluster.objects.get(pk=cluster.pk).description == "the A100 racks"
    assert not callbacks and not fake_kube.requests()
    assert "provisioning of every team" not in response.content.decode()


def test_a_local_cluster_is_never_provisioned(admin_client, team, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client.post(reverse("admin:clusters_cluster_add"),
                                     add_form(name="laptop", kind="local", settings='{"gpu": 0}'))  # fmt: skip
    assert response.status_code == 302 and Cluster.objects.filter(name="laptop").exists()
    assert not callbacks


def test_a_cluster_that_refuses_provisioning_is_still_saved_and_marked_unhealthy(
    admin_client, fake_kube, team, django_capture_on_commit_callbacks
):
    cluster = make_cluster(fake_kube)
    fake_kube.fail("POST", r"/api/v1/namespaces$", 403, times=5, message="forbidden: cannot create namespaces")
    with django_capture_on_commit_callbacks(execute=True):
        response = change(admin_client, cluster, namespace_prefix="team-")
    assert response.status_code == 200
    cluster.refresh_from_db()
    assert cluster.namespace_prefix == "team-"
    assert not cluster.healthy and "cannot create namespaces" in cluster.health_message


def test_provision_action_queues_every_team(admin_client, fake_kube, team, django_capture_on_commit_callbacks):
    cluster = make_cluster(fake_kube, namespace_prefix="act-")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:clusters_cluster_changelist"),
                                     {"action": "provision_teams", "_selected_action": [cluster.pk]}, follow=True)  # fmt: skip
    assert "Gpu-a: provisioning of every team queued." in response.content.decode()
    assert "act-vision" in namespace_names(fake_kube)
