"""The model registry: versions copied from a job's model_dir with their digests, metrics and lineage; pushed
archives; aliases and their history; deletion refused while a service uses a version; bad input refused
naming the field with nothing changed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from clusters.backends.contract import storage
from serving import services
from serving.models import AliasMove, InferenceService, ModelAlias, ModelVersion, RegisteredModel
from serving.store import model_store


def _rows() -> tuple:
    return (
        list(RegisteredModel.objects.values_list("name", "description")),
        list(ModelVersion.objects.values_list("model__name", "number", "digest")),
        list(ModelAlias.objects.values_list("name", "version__number")),
        AliasMove.objects.count(),
        list(InferenceService.objects.values_list("name", "version__number", "canary_percent")),
    )


def _model_dir(job) -> Path:
    return storage.output_dir(Path(settings.EASYAI_STORAGE_ROOT), job.public_id, "model_dir")


def test_a_jobs_model_dir_becomes_version_1_with_its_files_digests_metrics_and_lineage(finished_job, owner):
    version = services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn")
    assert (version.number, version.format, version.model.team.slug) == (1, "sklearn", "vision")
    folder = _model_dir(finished_job)
    expected = sorted(
        (
            {"path": p.name, "size": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
            for p in folder.iterdir()
        ),
        key=lambda f: f["path"],
    )
    assert version.files == expected
    assert version.size == sum(f["size"] for f in expected)
    assert version.digest == ModelVersion.digest_of(expected)
    assert version.metrics == {"accuracy": pytest.approx(finished_job.trained.score(*_iris()))}
    assert version.source_job == finished_job and version.source_path == "model_dir"
    assert version.lineage["job"] == finished_job.public_id
    assert version.lineage["experiment"] == "iris"
    assert version.lineage["command"] == finished_job.spec["command"]
    # The files are the registry's own copy: the job's cleanup cannot break the version.
    for entry in expected:
        (folder / entry["path"]).unlink()
    with model_store().open("models/vision/iris/1/model.joblib") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == expected[1]["sha256"]


def _iris():
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)


def test_versions_are_numbered_and_given_metrics_win_over_the_file(finished_job, owner):
    services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn")
    second = services.version_register(
        user=owner, job=finished_job, name="iris", model_format="sklearn", metrics={"accuracy": 0.5, "f1": 0.4}
    )
    assert second.number == 2
    assert second.metrics == {"accuracy": 0.5, "f1": 0.4}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model_format": "pickle-jar"}, "format"),
        ({"path": "model_dir/empty"}, "path"),
        ({"path": "../../etc"}, "path"),
        ({"path": "summary_dir"}, "path"),
        ({"model_format": "onnx"}, "path"),  # an sklearn folder holds no ONNX model
        ({"name": "Not A Name"}, "name"),
        ({"metrics": {"accuracy": "high"}}, "metrics"),
    ],
)
def test_bad_registrations_name_the_field_and_change_nothing(finished_job, owner, change, field):
    (_model_dir(finished_job) / "empty").mkdir()
    (_model_dir(finished_job) / "empty" / "metrics.json").write_text("{}")
    services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn")
    before = _rows()
    kwargs = {"user": owner, "job": finished_job, "name": "iris", "model_format": "sklearn", **change}
    with pytest.raises(ValidationError) as caught:
        services.version_register(**kwargs)
    assert field in caught.value.message_dict, caught.value.message_dict
    assert _rows() == before
    assert model_store().list("models/vision/iris/2") == []


def test_a_symbolic_link_in_the_folder_is_refused_and_nothing_is_copied(finished_job, owner, tmp_path):
    secret = tmp_path / "portal-secret"
    secret.write_text("do not read")
    os.symlink(secret, _model_dir(finished_job) / "stolen.joblib")
    with pytest.raises(ValidationError) as caught:
        services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn")
    assert "symbolic link" in caught.value.message_dict["path"][0]
    assert not ModelVersion.objects.exists()
    assert model_store().list("models/vision/iris") == []


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_pushed_archive_becomes_a_version_and_unsafe_archives_are_refused(owner, team, finished_job):
    model_bytes = (_model_dir(finished_job) / "model.joblib").read_bytes()
    version = services.version_push(
        user=owner, team=team, name="pushed", archive=_zip({"sub/model.joblib": model_bytes}), model_format="sklearn"
    )
    assert [f["path"] for f in version.files] == ["sub/model.joblib"]
    assert version.source_job is None and version.lineage == {}
    before = _rows()
    for bad in (_zip({"../evil.joblib": b"x"}), _zip({"/abs.joblib": b"x"}), b"not a zip", _zip({"notes.txt": b"x"})):
        with pytest.raises(ValidationError) as caught:
            services.version_push(user=owner, team=team, name="pushed", archive=bad, model_format="sklearn")
        assert set(caught.value.message_dict) & {"archive", "path"}
    assert _rows() == before


def test_aliases_move_with_their_history_and_refuse_missing_versions(finished_job, owner, mate):
    model = services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn").model
    services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn")
    services.alias_set(user=owner, model=model, alias="production", number=1)
    services.alias_set(user=owner, model=model, alias="production", number=2)
    services.alias_set(user=owner, model=model, alias="production", number=2)  # no move: not recorded
    assert ModelAlias.objects.get(model=model, name="production").version.number == 2
    moves = list(AliasMove.objects.order_by("id").values_list("alias", "from_number", "to_number", "moved_by__username"))
    assert moves == [("production", None, 1, "owner"), ("production", 1, 2, "owner")]
    before = _rows()
    for alias, number, field in (("production", 9, "version"), ("Prod!", 1, "alias"), ("staging", "two", "version")):
        with pytest.raises(ValidationError) as caught:
            services.alias_set(user=owner, model=model, alias=alias, number=number)
        assert field in caught.value.message_dict
    with pytest.raises(services.ServingActionRefused):
        services.alias_set(user=mate, model=model, alias="production", number=1)  # a team-mate may not move it
    assert _rows() == before


def test_a_version_a_service_uses_cannot_be_deleted(finished_job, owner, fake_backend):
    version = services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn")
    service = services.service_create(user=owner, team=finished_job.team, name="iris-svc", model="iris", version=1)
    before = _rows()
    with pytest.raises(services.ServingActionRefused) as caught:
        services.version_delete(user=owner, version=version)
    assert "vision/iris-svc" in str(caught.value)
    with pytest.raises(services.ServingActionRefused):
        services.model_delete(user=owner, model=version.model)
    assert _rows() == before
    assert model_store().list(version.prefix)
    services.service_delete(user=owner, service=service)
    services.version_delete(user=owner, version=version)
    assert not ModelVersion.objects.exists()
    assert model_store().list(version.prefix) == []


def test_the_metrics_file_is_read_only_when_it_is_json(finished_job, owner):
    (_model_dir(finished_job) / "metrics.json").write_text("not json")
    version = services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn")
    assert version.metrics == {}
    assert json.loads(json.dumps(version.files))


def test_on_an_object_store_a_version_is_kept_there_read_back_and_fetched_for_a_local_revision(
    s3, finished_job, owner, api
):
    version = services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn")
    keys = sorted(item["Key"] for item in s3.raw.list_objects_v2(Bucket=s3.bucket)["Contents"])
    assert keys == ["pre/models/vision/iris/1/metrics.json", "pre/models/vision/iris/1/model.joblib"]
    local = Path(settings.EASYAI_STORAGE_ROOT) / "models" / "vision" / "iris" / "1"
    assert not local.exists()  # nothing on the portal's disk until a local revision needs it

    answer = api(owner).get("/api/v1/models/vision/iris/versions/1/download/")
    assert answer.status_code == 200
    with zipfile.ZipFile(io.BytesIO(b"".join(answer.streaming_content))) as archive:
        original = (_model_dir(finished_job) / "model.joblib").read_bytes()
        assert archive.read("model.joblib") == original

    assert model_store().local_dir(version.prefix) == local
    assert (local / "model.joblib").read_bytes() == original
    assert model_store().uri(version.prefix).startswith(f"s3://{s3.bucket}/pre/models/vision/iris/1")

    services.version_delete(user=owner, version=version)
    assert s3.raw.list_objects_v2(Bucket=s3.bucket).get("Contents", []) == []
