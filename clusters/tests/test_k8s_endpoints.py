"""Web endpoints through a Service and an Ingress, on a Kubernetes cluster that has an ingress host."""

from __future__ import annotations

from typing import Any

import pytest

from clusters.backends.kubernetes import KubernetesBackend
from clusters.backends.kubernetes import manifests as m
from clusters.backends.kubernetes.schema_check import validate_manifest
from clusters.models import Cluster
from testing.fakekube import ROLES, make_cluster, make_job

NS = "easyai-vision"
SERVICES = ("", "v1", "services")
INGRESSES = ("networking.k8s.io", "v1", "ingresses")


def cluster(**fields: Any) -> Cluster:
    values: dict[str, Any] = {
        "name": "gpu-a",
        "kind": Cluster.Kind.KUBERNETES,
        "namespace_prefix": "easyai-",
        "nfs_server": "nfs.example.org",
        "nfs_path": "/export/easyai",
        "ingress_host": "endpoints.example.org",
    }
    values.update(fields)
    return Cluster(**values)


def with_ports(framework: str, **ports: int):
    job = make_job(framework)
    for task in job.tasks:
        task.ports.clear()
        task.ports.update(ports)
    return job


@pytest.mark.parametrize("framework", list(ROLES))
@pytest.mark.parametrize("volcano", [False, True])
def test_services_and_ingress_validate_strictly_for_every_framework(framework, volcano):
    job = with_ports(framework, web=8080, metrics=9090)
    target = cluster(scheduler=Cluster.Scheduler.VOLCANO if volcano else Cluster.Scheduler.DEFAULT)
    manifests = m.render(job, target)
    assert manifests[0]["kind"] not in ("Service", "Ingress")
    services = [x for x in manifests if x["kind"] == "Service"]
    ingresses = [x for x in manifests if x["kind"] == "Ingress"]
    assert len(services) == len(job.tasks) and len(ingresses) == 1
    for manifest in manifests:
        assert validate_manifest(manifest) == [], manifest["kind"]
        assert manifest["metadata"]["labels"][m.LABEL_JOB_ID] == job.job_id
        assert manifest["metadata"]["labels"][m.LABEL_MANAGED_BY] == "easyai"
    (rule,) = ingresses[0]["spec"]["rules"]
    assert rule["host"] == "endpoints.example.org"
    paths = {p["path"]: p["backend"]["service"] for p in rule["http"]["paths"]}
    assert set(paths) == {f"/endpoints/{job.job_id}/{t.name}/{n}" for t in job.tasks for n in ("web", "metrics")}
    first = job.tasks[0]
    assert paths[f"/endpoints/{job.job_id}/{first.name}/web"] == {
        "name": f"{job.job_id}-{first.name}-ep",
        "port": {"name": "web"},
    }


def test_a_service_selects_exactly_its_tasks_pod():
    pytorch = with_ports("pytorch", web=8080)
    service = next(x for x in m.render(pytorch, cluster()) if x["metadata"]["name"] == "j-ab12cd34-worker-1-ep")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == {
        m.LABEL_MANAGED_BY: "easyai",
        m.LABEL_JOB_ID: "j-ab12cd34",
        m.LABEL_ROLE: "worker",
        m.TO_REPLICA_INDEX: "1",
    }
    assert service["spec"]["ports"] == [{"name": "web", "port": 8080, "targetPort": 8080, "protocol": "TCP"}]
    # The labels the selector names are on the pod template (ours) or written by the operator on each pod.
    template = m.render(pytorch, cluster())[0]["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]
    assert template["metadata"]["labels"][m.LABEL_ROLE] == "worker"

    notebook = with_ports("notebook", jupyter=8888)
    pod, service, _ingress = m.render(notebook, cluster())
    assert all(pod["metadata"]["labels"][k] == v for k, v in service["spec"]["selector"].items())


def test_no_ingress_host_or_no_ports_renders_no_endpoint_objects():
    assert [x["kind"] for x in m.render(with_ports("notebook", jupyter=8888), cluster(ingress_host=""))] == ["Pod"]
    assert [x["kind"] for x in m.render(make_job("pytorch"), cluster())] == ["PyTorchJob"]


def test_the_ingress_host_may_carry_a_port_but_must_be_a_dns_name():
    job = with_ports("notebook", jupyter=8888)
    ingress = m.render(job, cluster(ingress_host="Endpoints.Example.org:8443"))[-1]
    assert ingress["spec"]["rules"][0]["host"] == "endpoints.example.org"
    for bad in ("10.0.0.7", "10.0.0.7:80", "bad_host", "host:port"):
        with pytest.raises(ValueError, match="ingress host"):
            m.render(job, cluster(ingress_host=bad))


def test_an_ingress_class_from_the_cluster_settings():
    ingress = m.render(with_ports("notebook", jupyter=8888), cluster(settings={"ingress_class": "nginx"}))[-1]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert validate_manifest(ingress) == []


def test_a_service_or_ingress_with_an_unknown_field_is_refused():
    _pod, service, ingress = m.render(with_ports("notebook", jupyter=8888), cluster())
    service["spec"]["selectr"] = {}
    ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["nmae"] = "x"
    assert validate_manifest(service) and validate_manifest(ingress)


# --- with the real client against the fake API server -----------------------------------------


@pytest.mark.django_db
def test_submit_creates_services_and_ingress_and_delete_removes_them(fake_kube):
    backend = KubernetesBackend(make_cluster(fake_kube, ingress_host="endpoints.example.org"))
    job = with_ports("pytorch", web=8080)
    backend.submit(job)
    backend.submit(job)  # a retried submit recognises its objects
    services = fake_kube.of_kind(*SERVICES)
    assert sorted(s["metadata"]["name"] for s in services) == [
        "j-ab12cd34-master-0-ep",
        "j-ab12cd34-worker-0-ep",
        "j-ab12cd34-worker-1-ep",
    ]
    # Not the names training-operator gives its own per-replica Services (MASTER_ADDR resolves through those).
    assert not {s["metadata"]["name"] for s in services} & {"j-ab12cd34-master-0", "j-ab12cd34-worker-0"}
    (ingress,) = fake_kube.of_kind(*INGRESSES)
    assert ingress["metadata"]["namespace"] == NS
    assert ingress["spec"] == m.render(job, backend.cluster)[-1]["spec"]
    created = fake_kube.requests("POST", r"/(services|ingresses)$")
    assert [r.status for r in created] == [201, 201, 201, 201, 409, 409, 409, 409]
    assert all(r.query.get("fieldValidation") == "Strict" for r in created)

    fake_kube.clear_journal()
    backend.stop(job.job_id)
    assert fake_kube.of_kind(*SERVICES) == [] and fake_kube.of_kind(*INGRESSES) == []
    assert fake_kube.of_kind("kubeflow.org", "v1", "pytorchjobs") == []
    # Found by the job's label, one list call per kind, never one call per object to find them.
    assert len(fake_kube.requests("GET", r"^/api/v1/services$")) == 1
    assert len(fake_kube.requests("GET", r"^/apis/networking.k8s.io/v1/ingresses$")) == 1
    assert len(fake_kube.requests("DELETE", r"/(services|ingresses)/")) == 4


@pytest.mark.django_db
def test_without_an_ingress_host_no_endpoint_objects_are_made_or_looked_for(fake_kube):
    backend = KubernetesBackend(make_cluster(fake_kube))
    job = with_ports("notebook", jupyter=8888)
    backend.submit(job)
    assert fake_kube.of_kind(*SERVICES) == [] and fake_kube.of_kind(*INGRESSES) == []
    backend.stop(job.job_id)
    assert not fake_kube.requests(path=r"/(services|ingresses)")


@pytest.mark.django_db
def test_check_names_a_bad_ingress_host(fake_kube):
    backend = KubernetesBackend(make_cluster(fake_kube, ingress_host="10.0.0.7"))
    problems = backend.check(with_ports("notebook", jupyter=8888))
    assert any("must be a DNS name" in p for p in problems), problems


def test_a_long_task_name_gets_a_hashed_service_name_within_63_characters():
    long_task = "a" * 50 + "-0"
    name = m.service_name("j-ab12cd34", long_task)
    assert (
        len(name) <= 63 and name.startswith("j-ab12cd34-ep-") and name != m.service_name("j-ab12cd34", "b" * 50 + "-0")
    )
