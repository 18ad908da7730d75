"""`easyai model` and `easyai serve` against a real portal (pytest-django's live server over HTTP).

Models are real scikit-learn models trained here; services run on the fake backend's cluster, so a revision
is a job the fake backend holds and never answers: these tests check what the CLI asks and shows, the local
end-to-end test (serving/tests/test_serving_e2e.py) serves for real.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from easyai_cli import config as cli_config
from easyai_cli.client import CLIError
from easyai_cli.main import main
from easyai_cli.models import unpack

from clusters.backends.contract import storage
from conftest import token_key_for
from jobs import services as job_services
from serving.models import AliasMove, InferenceService, ModelAlias, ModelVersion, RegisteredModel, Revision

CLI_DIR = Path(__file__).resolve().parents[1]


class Result:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"

    def json(self):
        return json.loads(self.out)


def run(*argv: str, stdin: bytes = b"") -> Result:
    """main(argv) in this process, with its own stdin/stdout/stderr (none of them a terminal); argparse's
    usage errors come back as code 2 with their message, as the command would exit."""
    streams = [io.TextIOWrapper(io.BytesIO(data), encoding="utf-8") for data in (stdin, b"", b"")]
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        code = main(list(argv))
    except SystemExit as exited:
        code = exited.code
    finally:
        for stream in streams[1:]:
            stream.flush()
        sys.stdin, sys.stdout, sys.stderr = saved
    out, err = (stream.buffer.getvalue().decode() for stream in streams[1:])
    return Result(code, out, err)


def run_process(*argv: str, env: dict[str, str]) -> Result:
    """The CLI as a real command: a fresh interpreter, configured only by its environment."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EASYAI_")}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CLI_DIR), os.environ.get("PYTHONPATH")]))
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "easyai_cli.main", *argv], capture_output=True, text=True, env=environment, timeout=60
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def config_dir(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "easyai-config"
    for name in ("EASYAI_URL", "EASYAI_TOKEN", "EASYAI_TEAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EASYAI_CONFIG_DIR", str(directory))
    cache.clear()
    return directory


@pytest.fixture
def logged_in(owner, live_server, config_dir, fake_backend, monkeypatch) -> str:
    """The owner's token in the CLI's config; the portal's default cluster is the fake backend's."""
    monkeypatch.setenv("EASYAI_URL", live_server.url)
    key = token_key_for(owner)
    cli_config.save(cli_config.Config(url=live_server.url, token=key, username="owner"))
    return key


def train_iris(folder: Path, *, c: float = 1.0) -> Path:
    """A small real model as a training job writes it: model.joblib, and metrics.json beside it."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(C=c, max_iter=300).fit(features, labels)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    (folder / "metrics.json").write_text(json.dumps({"accuracy": round(float(model.score(features, labels)), 4)}))
    return folder


def rows() -> tuple:
    """What a refused command must leave as it was."""
    return (
        list(RegisteredModel.objects.order_by("name").values_list("name", "description")),
        list(ModelVersion.objects.order_by("model__name", "number").values_list("model__name", "number", "digest")),
        list(ModelAlias.objects.order_by("name").values_list("name", "version__number")),
        AliasMove.objects.count(),
        list(InferenceService.objects.values_list("name", "version__number", "canary_percent", "alias")),
        Revision.objects.count(),
    )


def answered(service: str, number: int, role: str, **stats) -> None:
    """Record a revision as answering, as the sync pass does once its model server is ready: the next one
    becomes the primary, a canary takes its share."""
    found = InferenceService.objects.get(name=service)
    revision = found.revisions.get(number=number)
    Revision.objects.filter(pk=revision.pk).update(state="ready", ready_at=timezone.now())
    roles = {"primary": revision, "next": None} if role == "next" else {"canary": revision}
    InferenceService.objects.filter(pk=found.pk).update(**roles, **stats)


def fields_of(out: str) -> dict[str, str]:
    """The `Label: value` lines before a command's first table."""
    lines = out.split("\n\n", 1)[0].splitlines()
    return {label: value.strip() for label, value in (line.split(":", 1) for line in lines)}


def same_files(one: Path, other: Path) -> bool:
    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    return files(one) == files(other)


# --- the registry --------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_models_whole_life_push_alias_pull_and_delete(logged_in, live_server, tmp_path, monkeypatch):
    first = train_iris(tmp_path / "iris-1", c=0.05)
    second = train_iris(tmp_path / "iris-2", c=10.0)
    accuracy_1 = json.loads((first / "metrics.json").read_text())["accuracy"]

    # The first push as a real command: the archive streams from a temporary file in a fresh interpreter.
    env = {"EASYAI_URL": live_server.url, "EASYAI_TOKEN": logged_in, "EASYAI_CONFIG_DIR": str(tmp_path / "none")}
    pushed = run_process("model", "push", str(first), "--name", "iris", "--format", "sklearn",
                         "--metrics", '{"f1": 0.91}', env=env)  # fmt: skip
    assert pushed.code == 0, pushed
    assert pushed.out.startswith(f"pushed {first} as vision/iris version 1 (sklearn, 2 files,")
    assert f"accuracy={accuracy_1}" in pushed.out and "f1=0.91" in pushed.out

    listed = run("model", "list")
    assert listed.code == 0, listed
    header, line = listed.out.splitlines()
    assert header.split()[:4] == ["NAME", "VERSIONS", "LATEST", "OWNER"]
    assert line.split()[:4] == ["iris", "1", "1", "owner"]
    assert [(m["name"], m["latest_version"]) for m in run("model", "list", "-o", "json").json()] == [("iris", 1)]

    again = run("model", "push", str(second), "--name", "iris", "--format", "sklearn", "--metrics", '{"f1": 0.97}')
    assert again.code == 0, again
    assert "vision/iris version 2" in again.out

    moved = run("model", "alias", "iris", "production", "1")
    assert (moved.code, moved.out) == (0, "vision/iris@production -> version 1\n"), moved
    assert run("model", "alias", "iris", "production", "2").code == 0

    shown = run("model", "get", "iris")
    assert shown.code == 0, shown
    lines = shown.out.splitlines()
    assert "Aliases:     production -> 2" in lines
    versions = lines[lines.index("Versions:") + 1 :]
    assert versions[0].split()[:5] == ["VERSION", "FORMAT", "ALIASES", "ACCURACY", "F1"]
    assert versions[1].split()[:5] == ["2", "sklearn", "production", versions[1].split()[3], "0.97"]
    assert versions[2].split()[:5] == ["1", "sklearn", "-", str(accuracy_1), "0.91"]
    history = lines[lines.index("Alias history:") + 1 :]
    # Newest first, as the portal keeps it.
    assert [h.split()[2:] for h in history[1:]] == [
        ["production", "1", "2", "owner"],
        ["production", "-", "1", "owner"],
    ]

    detail = run("model", "get", "iris", "--version", "1")
    assert detail.code == 0, detail
    digest = ModelVersion.objects.get(model__name="iris", number=1).digest
    assert f"Digest:      sha256:{digest}" in detail.out
    assert "Source:      pushed" in detail.out
    joblib_sha = hashlib.sha256((first / "model.joblib").read_bytes()).hexdigest()
    assert any(line.split()[:1] == ["model.joblib"] and line.endswith(joblib_sha) for line in detail.out.splitlines())

    pulled = run("model", "pull", "iris@production", "-o", str(tmp_path / "prod"))
    assert pulled.code == 0, pulled
    assert "pulled vision/iris:2 (sklearn, 2 files" in pulled.err and "checked" in pulled.err
    assert same_files(second, tmp_path / "prod")
    assert run("model", "pull", "iris:1", "-o", str(tmp_path / "one")).code == 0
    assert same_files(first, tmp_path / "one")
    monkeypatch.chdir(tmp_path)
    assert run("model", "pull", "iris").code == 0  # the latest, into ./iris-2
    assert same_files(second, tmp_path / "iris-2")

    assert run("model", "alias", "iris", "staging", "1").code == 0
    dropped = run("model", "alias", "iris", "staging", "--delete")
    assert (dropped.code, dropped.out) == (0, "alias staging of vision/iris deleted\n")
    assert run("model", "get", "iris", "-o", "json").json()["aliases"] == {"production": 2}

    gone = run("model", "pull", "iris:7", "-o", str(tmp_path / "gone"))
    assert (gone.code, gone.err) == (1, "vision/iris:7: not found (or you may not see it)\n")
    assert not (tmp_path / "gone").exists()

    deleted = run("model", "delete", "iris", "--version", "1")
    assert (deleted.code, deleted.out) == (0, "version 1 of vision/iris deleted\n"), deleted
    assert [v["version"] for v in run("model", "get", "iris", "-o", "json").json()["version_list"]] == [2]
    assert run("model", "get", "iris", "--version", "1").err == "vision/iris:1: not found (or you may not see it)\n"
    assert run("model", "pull", "iris:1").err == "vision/iris:1: not found (or you may not see it)\n"

    everything = run("model", "delete", "iris")
    assert (everything.code, everything.out) == (0, "model vision/iris deleted, with every version\n")
    assert run("model", "list").err == "No models in team vision.\n"


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_bad_input_prints_the_fields_message_and_changes_nothing(logged_in, tmp_path):
    folder = train_iris(tmp_path / "iris")
    assert run("model", "push", str(folder), "--name", "iris", "--format", "sklearn").code == 0
    assert run("model", "alias", "iris", "production", "1").code == 0
    before = rows()

    unknown = run("model", "push", str(folder), "--name", "iris", "--format", "pickle-jar")
    assert unknown.code == 1, unknown
    assert unknown.err.startswith("format: Unknown format 'pickle-jar': one of ") and "sklearn" in unknown.err

    (tmp_path / "empty").mkdir()
    empty = run("model", "push", str(tmp_path / "empty"), "--name", "iris", "--format", "sklearn")
    assert (empty.code, empty.err) == (2, f"{tmp_path / 'empty'}: the folder is empty, nothing to push\n")
    missing = run("model", "push", str(tmp_path / "nowhere"), "--name", "iris", "--format", "sklearn")
    assert (missing.code, missing.err) == (2, f"{tmp_path / 'nowhere'}: no such folder\n")

    (tmp_path / "no-model").mkdir()
    (tmp_path / "no-model" / "metrics.json").write_text("{}")
    no_model = run("model", "push", str(tmp_path / "no-model"), "--name", "iris", "--format", "sklearn")
    assert no_model.code == 1 and no_model.err.startswith("path: "), no_model

    bad_metrics = run("model", "push", str(folder), "--name", "iris", "--format", "sklearn", "--metrics", "{acc")
    assert bad_metrics.code == 2 and bad_metrics.err.startswith("--metrics: not valid JSON"), bad_metrics
    wrong_metrics = run("model", "push", str(folder), "--name", "iris", "--format", "sklearn",
                        "--metrics", '{"accuracy": "high"}')  # fmt: skip
    assert wrong_metrics.code == 1 and wrong_metrics.err.startswith("metrics"), wrong_metrics

    nine = run("model", "alias", "iris", "production", "9")
    assert (nine.code, nine.err) == (1, "version: The model has no version 9.\n")
    assert run("model", "alias", "iris", "production").code == 2
    no_alias = run("model", "alias", "iris", "staging", "--delete")
    assert (no_alias.code, no_alias.err) == (1, "The model has no alias 'staging'.\n")
    assert run("model", "pull", "iris@staging", "-o", str(tmp_path / "x")).err == (
        "model vision/iris has no alias 'staging' (its aliases: production)\n"
    )
    assert run("model", "pull", "iris:01").code == 2
    assert run("model", "get", "nothing").err == "model vision/nothing: not found (or you may not see it)\n"
    assert run("model").code == 2

    assert rows() == before
    assert not (tmp_path / "x").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_register_a_jobs_model_dir_with_its_lineage(logged_in, owner, team):
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
    model_dir = storage.output_dir(Path(settings.EASYAI_STORAGE_ROOT), job.public_id, "model_dir")
    train_iris(model_dir / "best")

    made = run("model", "register", job.public_id, "--name", "iris", "--path", "model_dir/best", "--format",
               "sklearn", "-o", "json")  # fmt: skip
    assert made.code == 0, made
    version = made.json()
    assert (version["team"], version["model"], version["version"]) == ("vision", "iris", 1)
    assert (version["source_job"], version["source_path"]) == (job.public_id, "model_dir/best")

    shown = run("model", "get", "iris", "--version", "1")
    assert f"Source:      {job.public_id}/model_dir/best" in shown.out, shown
    lineage = shown.out.split("Lineage:\n", 1)[1].split("\n\n", 1)[0]
    fields = {key.strip(): value.strip() for key, value in (line.split(":", 1) for line in lineage.splitlines())}
    assert (fields["job"], fields["job_name"], fields["experiment"]) == (job.public_id, "iris-train", "iris")
    assert fields["command"] == "/bin/sh -c 'python train.py'"

    before = rows()
    wrong = run("model", "register", job.public_id, "--name", "iris", "--path", "summary_dir", "--format", "sklearn")
    assert wrong.code == 1 and wrong.err.startswith("path: "), wrong
    assert rows() == before


# --- inference services --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_service_on_the_fake_cluster_created_shown_split_and_deleted(logged_in, fake_backend, tmp_path):
    for number, c in ((1, 0.05), (2, 10.0)):
        folder = train_iris(tmp_path / f"iris-{number}", c=c)
        assert run("model", "push", str(folder), "--name", "iris", "--format", "sklearn").code == 0

    made = run("serve", "create", "iris-svc", "--model", "iris", "--version", "1", "--memory", "1Gi")
    assert made.code == 0, made
    assert made.out.splitlines()[0] == (
        "service vision/iris-svc created on cluster fake, serving iris version 1: revision 1 is starting"
    )
    assert "/serving/vision/iris-svc/" in made.out
    assert len(fake_backend.jobs) == 1  # the revision's model-server job went to the cluster

    listed = run("serve", "list")
    assert listed.code == 0, listed
    assert listed.out.splitlines()[1].split()[:5] == ["iris-svc", "iris", "version", "1", "starting"]

    shown = run("serve", "get", "iris-svc")
    assert shown.code == 0, shown
    fields = fields_of(shown.out)
    assert (fields["Serving"], fields["State"]) == ("version 1", "starting")
    assert fields["URL"].endswith("/serving/vision/iris-svc/")
    assert fields["Traffic"] == "none (no revision ready)"
    assert fields["Calls"] == "0 (0 errors), mean latency -"
    assert fields["Resources"] == "cpu 1, memory 1Gi, gpu 0, replicas 1-1"
    assert "model server's gRPC port" in fields["gRPC"]
    revision = shown.out.split("Revisions:\n", 1)[1].splitlines()[1].split()
    assert revision[:3] == ["1", "1", "starting"] and revision[3].startswith("j-")

    # The revision answers (what the sync pass records when its model server is ready), and has been called.
    answered("iris-svc", 1, "next", requests=4, errors=1, latency_ms_total=50.0)
    fields = fields_of(run("serve", "get", "iris-svc").out)
    assert (fields["State"], fields["Traffic"]) == ("ready", "revision 1 (version 1) 100%")
    assert fields["Calls"] == "4 (1 errors), mean latency 12.5 ms"

    before = rows()
    too_much = run("serve", "canary", "iris-svc", "--version", "2", "--percent", "150")
    assert too_much.code == 1 and too_much.err.startswith("percent: "), too_much
    nine = run("serve", "canary", "iris-svc", "--version", "9", "--percent", "10")
    assert (nine.code, nine.err) == (1, "version: The model has no version 9.\n")
    no_version = run("serve", "canary", "iris-svc", "--percent", "10")
    assert no_version.code == 2 and "the following arguments are required: --version" in no_version.err
    in_use = run("model", "delete", "iris")
    assert (in_use.code, in_use.err) == (
        1,
        "In use by the inference service vision/iris-svc: change or delete it first.\n",
    ), in_use
    assert rows() == before

    canary = run("serve", "canary", "iris-svc", "--version", "2", "--percent", "10")
    assert canary.code == 0, canary
    state = run("serve", "get", "iris-svc", "-o", "json").json()
    assert (state["canary_version"], state["canary_percent"]) == (2, 10)
    fields = fields_of(run("serve", "get", "iris-svc").out)
    assert (fields["Canary"], fields["Traffic"]) == ("version 2, 10% of the calls", "revision 1 (version 1) 100%")
    early = run("serve", "promote", "iris-svc")
    assert (early.code, early.err) == (
        1,
        "The canary (revision 2) does not answer yet: promote it once it is ready.\n",
    ), early

    answered("iris-svc", 2, "canary")
    split = "revision 1 (version 1) 90%, revision 2 (version 2) 10%"
    assert fields_of(run("serve", "get", "iris-svc").out)["Traffic"] == split
    assert run("serve", "list").out.splitlines()[1].split()[5:7] == ["v1:90%", "v2:10%"]
    promoted = run("serve", "promote", "iris-svc")
    assert promoted.code == 0, promoted
    assert "the canary was promoted" in promoted.out and "traffic revision 2 (version 2) 100%" in promoted.out
    assert fields_of(run("serve", "get", "iris-svc").out)["Serving"] == "version 2"

    back = run("serve", "rollback", "iris-svc")
    assert back.code == 0, back
    state = run("serve", "get", "iris-svc", "-o", "json").json()
    assert state["version"] == 1 and state["revisions"][0]["revision"] == 3
    assert (state["revisions"][0]["version"], state["revisions"][0]["state"]) == (1, "starting")

    assert run("model", "alias", "iris", "production", "2").code == 0
    follow = run("serve", "set", "iris-svc", "--alias", "production")
    assert follow.code == 0, follow
    assert follow.out == (
        "service vision/iris-svc set to serve @production (version 2); "
        "revision 4 is starting and takes the calls once it answers\n"
    )
    assert run("serve", "set", "iris-svc").code == 2

    # Revision 2 serves in the records, but the fake cluster runs no model server to answer.
    call = run("serve", "predict", "iris-svc", "--data", '{"instances": [[5.1, 3.5, 1.4, 0.2]]}')
    assert call.code == 1 and call.err.startswith("The service has no revision ready"), call
    assert run("serve", "predict", "iris-svc", "--data", "{not json").code == 2

    deleted = run("serve", "delete", "iris-svc")
    assert (deleted.code, deleted.out) == (0, "service vision/iris-svc deleted\n")
    assert run("serve", "list").err == "No inference services in team vision.\n"
    assert run("serve", "get", "iris-svc").err == "service vision/iris-svc: not found (or you may not see it)\n"


# --- unpacking a pulled archive ------------------------------------------------------------------------------


def _zip(files: dict[str, bytes], links: tuple[str, ...] = ()) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            archive.writestr(info, "/etc/passwd")
    buffer.seek(0)
    return buffer


def _entry(path: str, data: bytes) -> dict:
    return {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize(
    ("files", "links"),
    [
        ({"../evil.joblib": b"x"}, ()),
        ({"/tmp/evil.joblib": b"x"}, ()),
        ({"sub/../../evil.joblib": b"x"}, ()),
        ({"C:/evil.joblib": b"x"}, ()),
        ({"sub\\..\\evil.joblib": b"x"}, ()),
        ({}, ("model.joblib",)),
        ({"model.joblib": b"other bytes"}, ()),  # not what the version says it holds
        ({"model.joblib": b"weights", "extra.py": b"import os"}, ()),
    ],
)
def test_an_unsafe_or_altered_archive_writes_nothing(tmp_path, files, links):
    target = tmp_path / "target"
    with pytest.raises(CLIError) as refused:
        unpack(_zip(files, links), target, [_entry("model.joblib", b"weights")])
    assert "nothing" in str(refused.value)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_sound_archive_is_unpacked_with_its_folders(tmp_path):
    files = {"model.joblib": b"weights", "tokenizer/vocab.txt": b"a\nb\n"}
    target = tmp_path / "target"
    target.mkdir()
    (target / "model.joblib").write_bytes(b"old")
    unpack(_zip(files), target, [_entry(name, data) for name, data in files.items()])
    assert {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()} == files
