"""The serving tests' shared fixtures: a finished job with a trained model in its model_dir, a registered
version, and a way to settle services as the site's clock would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

from clusters.backends.contract import storage
from jobs import services as job_services
from jobs.models import Job


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
