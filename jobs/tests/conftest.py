import pytest

from jobs import services


@pytest.fixture
def spec_doc():
    """A small valid spec; tests change what they need."""

    def make(**changes):
        doc = {
            "name": "resnet",
            "framework": "pytorch",
            "image": "pytorch/pytorch:2.3",
            "command": "python train.py",
            "roles": {
                "master": {"replicas": 1, "cpu": "1", "memory": "1Gi"},
                "worker": {"replicas": 2, "cpu": "500m", "memory": "1Gi"},
            },
        }
        doc.update(changes)
        return doc

    return make


@pytest.fixture
def submit(django_capture_on_commit_callbacks, spec_doc):
    """submit(user, **spec changes) -> Job, with its after-commit work (the submit worker) run."""

    def run(user, **changes):
        with django_capture_on_commit_callbacks(execute=True):
            return services.job_submit(user=user, data=spec_doc(**changes))

    return run
