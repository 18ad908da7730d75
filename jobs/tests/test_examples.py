"""Every example spec in examples/ is one the platform accepts as it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from jobs import spec as job_spec

EXAMPLES = Path(settings.BASE_DIR) / "examples"
# Job specs; the pipelines' examples are pipeline specs (pipelines/tests checks them), the templates job templates
# (test_templates and test_templates_run check them).
FILES = sorted(
    p
    for pattern in ("*.yaml", "*.yml")
    for p in EXAMPLES.glob(f"**/{pattern}")
    if p.relative_to(EXAMPLES).parts[0] not in ("pipelines", "templates")
)


def test_the_examples_we_document_exist():
    names = {p.relative_to(EXAMPLES).as_posix() for p in FILES}
    assert {"tensorflow.yaml", "batch.yaml"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_example_validates(path: Path):
    spec = job_spec.validate(job_spec.parse(path.read_text(encoding="utf-8"), "application/yaml"))
    # A stored spec is re-run as is: the normalized example must validate to itself.
    assert job_spec.validate(spec) == spec


def test_tensorflow_example_has_chief_ps_and_two_workers():
    spec = job_spec.validate(job_spec.parse((EXAMPLES / "tensorflow.yaml").read_text(), "application/yaml"))
    assert spec["framework"] == "tensorflow"
    assert {name: role["replicas"] for name, role in spec["roles"].items()} == {"chief": 1, "ps": 1, "worker": 2}
    assert "TF_CONFIG" in spec["command"][-1]


def test_batch_example_roles_report_themselves_and_write_model_dir():
    spec = job_spec.validate(job_spec.parse((EXAMPLES / "batch.yaml").read_text(), "application/yaml"))
    assert spec["framework"] == "batch"
    assert {name: role["replicas"] for name, role in spec["roles"].items()} == {"prepare": 1, "train": 2}
    for role in spec["roles"].values():
        script = role["command"][-1]
        assert "$EASYAI_ROLE" in script and "$EASYAI_ROLE_INDEX" in script and "$model_dir" in script
