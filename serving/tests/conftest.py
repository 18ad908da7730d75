"""The serving tests' shared fixtures: a finished job with a trained model in its model_dir, a registered
version, and a way to settle services as the site's clock would."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from clusters.backends.contract import storage
from jobs import services as job_services
from jobs.models import Job
from serving import services
from serving.store import S3Store, model_store, reset_model_store


def train_iris(folder: Path, *, seed: int = 0, max_iter: int = 200) -> object:
    """A small real scikit-learn model, written as the example's job writes it: model.joblib and metrics.json."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=max_iter, random_state=seed).fit(features, labels)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    (folder / "metrics.json").write_text(json.dumps({"accuracy": float(model.score(features, labels))}))
    return model


@pytest.fixture
def finished_job(fake_backend, owner, team) -> Job:
    """A job of the owner's that ended with a trained model in its model_dir."""
    job = job_services.job_submit(
        user=owner,
        data={
            "name": "iris-train",
            "team": team.slug,
            "framework": "batch",
            "command": "python train.py",
            "experiment": "iris",
            "roles": {"train": {"replicas": 1, "cpu": "1", "memory": "1Gi"}},
        },
    )
    folder = storage.output_dir(Path(settings.EASYAI_STORAGE_ROOT), job.public_id, "model_dir")
    job.trained = train_iris(folder)
    return job


@pytest.fixture
def iris(finished_job, people):
    """The owner's model vision/iris: version 1 (metrics.json's accuracy), version 2 (given metrics), production → 1."""
    owner = people["owner"]
    model = services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn").model
    services.version_register(
        user=owner, job=finished_job, name="iris", model_format="sklearn", metrics={"accuracy": 0.5, "f1": 0.4}
    )
    services.alias_set(user=owner, model=model, alias="production", number=1)
    return model


@pytest.fixture
def service(iris, people, team):
    """The owner's service vision/iris-svc, set to version 1 (its first revision starting)."""
    return services.service_create(user=people["owner"], team=team, name="iris-svc", model="iris", version=1)


# --- the S3 store, against moto's S3 server on loopback ---------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(settings, monkeypatch, tmp_path, s3_endpoint) -> Iterator[S3Store]:
    """A new bucket on the server and the store pointed at it, under the key prefix ``pre/``."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    settings.EASYAI_MODEL_STORE = f"s3://{bucket}/pre"
    settings.EASYAI_S3_ENDPOINT_URL = s3_endpoint
    reset_model_store()
    found = model_store()
    assert isinstance(found, S3Store)
    found.client.create_bucket(Bucket=bucket)
    found.raw = found.client  # the test's own look at the bucket, around the store
    yield found
    reset_model_store()
