"""The model server (modelserver/, `python -m easyai_modelserver`): real processes, real HTTP, real gRPC.

Each test trains or builds a tiny model into a folder, starts the server on free ports, waits for
/v2/health/ready, and asks it what a client of an inference service would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import joblib
import numpy as np
import psutil
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from testing.wait import wait_until

pytestmark = pytest.mark.slow

# The tests run the package's source, so that an edit is tested without reinstalling it; tasks run the copy
# that requirements-serving.txt installs into the virtualenv.
SOURCE = Path(__file__).resolve().parents[2] / "modelserver"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
PREFIX = "easyai-modelserver: "


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE), env.get("PYTHONPATH")]))
    return env


def command(model_dir: Path, model_format: str, name: str, http_port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "easyai_modelserver",
        "--model-dir",
        str(model_dir),
        "--format",
        model_format,
        "--name",
        name,
        "--http-port",
        str(http_port),
        *extra,
    ]


@dataclass
class Server:
    process: subprocess.Popen
    name: str
    http_port: int
    grpc_port: int | None
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def get(self, path: str) -> tuple[int, dict]:
        return http("GET", self.url + path)

    def post(self, path: str, body: object) -> tuple[int, dict]:
        return http("POST", self.url + path, body)

    def v1_predict(self, instances: object) -> tuple[int, dict]:
        return self.post(f"/v1/models/{self.name}:predict", {"instances": instances})

    def v2_infer(self, array: np.ndarray, datatype: str) -> tuple[int, dict]:
        tensor = {"name": "input-0", "shape": list(array.shape), "datatype": datatype, "data": array.ravel().tolist()}
        return self.post(f"/v2/models/{self.name}/infer", {"inputs": [tensor]})

    def grpc_infer(self, array: np.ndarray) -> pb.ModelInferResponse:
        tensor = pb.ModelInferRequest.InferInputTensor(
            name="input-0",
            datatype="FP64",
            shape=list(array.shape),
            contents=pb.InferTensorContents(fp64_contents=array.ravel().tolist()),
        )
        with grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            return stub.ModelInfer(pb.ModelInferRequest(model_name=self.name, inputs=[tensor]), timeout=30)

    def listening(self) -> set[tuple[str, int]]:
        """The (address, port) pairs the server's processes listen on."""
        found = set()
        root = psutil.Process(self.process.pid)
        for proc in [root, *root.children(recursive=True)]:
            connections = getattr(proc, "net_connections", proc.connections)
            found |= {(c.laddr.ip, c.laddr.port) for c in connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        return found


def http(method: str, url: str, body: object = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def ready(server: Server) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"the model server exited with {server.process.returncode}:\n{server.log_text()}")
    try:
        return server.get("/v2/health/ready")[0] == 200
    except (OSError, ValueError):
        return False


def start(tmp_path: Path, model_dir: Path, model_format: str, *, grpc_on: bool = False, workers: int = 1) -> Server:
    http_port = free_port()
    grpc_port = free_port() if grpc_on else None
    extra = ["--grpc-port", str(grpc_port)] if grpc_port else []
    if workers != 1:
        extra += ["--workers", str(workers)]
    log = tmp_path / f"server-{http_port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command(model_dir, model_format, "iris", http_port, *extra),
            env=server_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, "iris", http_port, grpc_port, log)
    try:
        wait_until(lambda: ready(server), START_TIMEOUT, "the model server's /v2/health/ready", every=0.1)
    except BaseException:
        stop(server)
        raise
    return server


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def run_once(model_dir: Path, model_format: str, http_port: int | None = None) -> subprocess.CompletedProcess:
    """A server that should refuse to start: its exit status and output."""
    return subprocess.run(
        command(model_dir, model_format, "iris", http_port or free_port()),
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    features, labels = load_iris(return_X_y=True)
    # Every tenth flower: all three species, a batch small enough to read in a failure.
    return features[::10], labels


@pytest.fixture(scope="module")
def sklearn_model() -> LogisticRegression:
    features, labels = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=1000).fit(features, labels)


@pytest.fixture(scope="module")
def sklearn_server(tmp_path_factory, sklearn_model) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("sklearn")
    model_dir = folder / "model"
    model_dir.mkdir()
    joblib.dump(sklearn_model, model_dir / "model.joblib")
    (model_dir / "metrics.json").write_text('{"accuracy": 0.97}')
    server = start(folder, model_dir, "sklearn", grpc_on=True)
    yield server
    stop(server)


@pytest.fixture
def served() -> Iterator[list[Server]]:
    """Servers a test starts, stopped at its end."""
    servers: list[Server] = []
    yield servers
    for server in servers:
        stop(server)


# scikit-learn over V1, V2 and gRPC


def test_v1_predict_answers_the_models_predictions(sklearn_server, sklearn_model, iris):
    features, _ = iris

    status, body = sklearn_server.v1_predict(features.tolist())

    assert status == 200, body
    assert body == {"predictions": sklearn_model.predict(features).tolist()}
    assert sklearn_server.get("/v1/models/iris") == (200, {"name": "iris", "ready": True})


def test_v2_infer_answers_the_same_predictions(sklearn_server, sklearn_model, iris):
    features, _ = iris

    status, body = sklearn_server.v2_infer(features, "FP64")

    assert status == 200, body
    [output] = body["outputs"]
    assert output["name"] == "predict"
    assert output["datatype"] == "INT64"
    assert output["shape"] == [len(features)]
    assert output["data"] == sklearn_model.predict(features).tolist()
    assert body["model_name"] == "iris"
    assert sklearn_server.get("/v2/models/iris/ready")[0] == 200


def test_grpc_model_infer_answers_the_same_predictions(sklearn_server, sklearn_model, iris):
    features, _ = iris

    response = sklearn_server.grpc_infer(features)

    [output] = response.outputs
    assert (output.name, output.datatype, list(output.shape)) == ("predict", "INT64", [len(features)])
    assert list(output.contents.int64_contents) == sklearn_model.predict(features).tolist()


def test_both_ports_bind_to_the_loopback_address_alone(sklearn_server):
    listening = sklearn_server.listening()

    assert {port for _address, port in listening} == {sklearn_server.http_port, sklearn_server.grpc_port}
    assert {address for address, _port in listening} <= {"127.0.0.1", "::ffff:127.0.0.1"}


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("/v1/models/iris:predict", {"instances": "nonsense"}, "instances"),
        ("/v1/models/iris:predict", {"instances": [[5.1, 3.5, 1.4]]}, "3 features"),
        ("/v1/models/iris:predict", {"instances": [[5.1, 3.5, 1.4, 0.2], [1.0]]}, "inhomogeneous"),
        ("/v1/models/iris:predict", ["not", "an", "object"], "instances"),
        (
            "/v2/models/iris/infer",
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [5.1, 3.5, 1.4]}]},
            "3 features",
        ),
        (
            "/v2/models/iris/infer",
            {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [5.1]}]},
            "reshape",
        ),
        ("/v2/models/iris/infer", {"inputs": "nonsense"}, "inputs"),
    ],
)
def test_malformed_body_is_a_400_with_the_models_message(sklearn_server, path, body, says):
    status, answer = sklearn_server.post(path, body)

    assert status == 400, answer
    assert says in answer["error"]


def test_grpc_input_of_the_wrong_width_is_invalid_argument(sklearn_server, iris):
    features, _ = iris

    with pytest.raises(grpc.RpcError) as error:
        sklearn_server.grpc_infer(features[:, :3])

    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "3 features" in error.value.details()


# Refusing to start


def test_empty_folder_exits_1_with_one_line_before_binding(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()

    http_port = free_port()

    result = run_once(empty, "sklearn", http_port)

    assert result.returncode == 1
    assert result.stderr == f"{PREFIX}no scikit-learn model (*.joblib, *.pkl, *.pickle) in {empty}\n"
    assert port_is_free(http_port)


def test_folder_with_only_metrics_holds_no_xgboost_model(tmp_path):
    (tmp_path / "metrics.json").write_text('{"rmse": 0.1}')

    result = run_once(tmp_path, "xgboost")

    assert result.returncode == 1
    assert result.stderr == f"{PREFIX}no XGBoost model (*.json, *.ubj, *.bst, *.model) in {tmp_path}\n"


def test_model_that_raises_while_loading_exits_1_with_its_message(tmp_path):
    (tmp_path / "model.py").write_text(
        textwrap.dedent(
            """
            class Model:
                def load(self, model_dir):
                    raise RuntimeError("weights.bin is missing\\nsecond line")

                def predict(self, instances):
                    return instances
            """
        )
    )

    http_port = free_port()

    result = run_once(tmp_path, "custom", http_port)

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"{PREFIX}could not load the custom model in {tmp_path}: RuntimeError: ")
    assert "weights.bin is missing second line" in result.stderr
    assert port_is_free(http_port)


@pytest.mark.parametrize(
    ("model_format", "marker", "package"),
    [("huggingface", "config.json", "transformers"), ("tensorflow", "saved_model.pb", "tensorflow")],
)
def test_format_whose_library_is_missing_says_so(tmp_path, model_format, marker, package):
    try:
        __import__(package)
    except ImportError:
        pass
    else:
        pytest.skip(f"{package} is installed here")
    (tmp_path / marker).write_text("{}")

    result = run_once(tmp_path, model_format)

    assert result.returncode == 1
    assert result.stderr.startswith(f"{PREFIX}the {model_format} format needs the {package} package")
    assert "not installed" in result.stderr


# The other formats


def test_xgboost_model_predicts_like_its_booster(tmp_path, served, iris):
    import xgboost

    features, labels = load_iris(return_X_y=True)
    regressor = xgboost.XGBRegressor(n_estimators=5, max_depth=2).fit(features, labels)
    regressor.save_model(tmp_path / "iris.json")
    (tmp_path / "metrics.json").write_text('{"rmse": 0.1}')
    batch, _ = iris
    expected = regressor.get_booster().predict(xgboost.DMatrix(batch.astype(np.float32))).tolist()

    served.append(server := start(tmp_path, tmp_path, "xgboost"))

    assert server.v1_predict(batch.tolist()) == (200, {"predictions": expected})
    status, body = server.v2_infer(batch, "FP32")
    assert status == 200, body
    assert body["outputs"][0]["data"] == expected
    assert body["outputs"][0]["datatype"] == "FP32"


def _onnx_model(model_dir: Path, sklearn_model: LogisticRegression) -> None:
    from skl2onnx import to_onnx

    onnx_model = to_onnx(sklearn_model, np.zeros((1, 4), dtype=np.float32), target_opset=17)
    (model_dir / "model.onnx").write_bytes(onnx_model.SerializeToString())


def test_onnx_model_predicts_like_the_model_it_was_converted_from(tmp_path, served, sklearn_model, iris):
    _onnx_model(tmp_path, sklearn_model)
    batch, _ = iris
    expected = sklearn_model.predict(batch.astype(np.float32)).tolist()

    served.append(server := start(tmp_path, tmp_path, "onnx"))

    assert server.v1_predict(batch.tolist()) == (200, {"predictions": expected})
    status, body = server.v2_infer(batch, "FP64")
    assert status == 200, body
    assert body["outputs"][0]["data"] == expected
    status, body = server.v1_predict([[1.0, 2.0]])
    assert status == 400
    assert "input" in body["error"].lower()


def test_onnx_model_with_two_http_workers_loads_in_each(tmp_path, served, sklearn_model, iris):
    _onnx_model(tmp_path, sklearn_model)
    batch, _ = iris
    expected = sklearn_model.predict(batch.astype(np.float32)).tolist()

    served.append(server := start(tmp_path, tmp_path, "onnx", workers=2))

    # Successive connections land on either worker; each must have its own session.
    for _ in range(6):
        assert server.v1_predict(batch.tolist()) == (200, {"predictions": expected})
    assert "exited" not in server.log_text()


def _torch_batch_predictions(module, batch: np.ndarray) -> list:
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(batch.astype(np.float32))).numpy().tolist()


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript_model_predicts_like_the_module(tmp_path, served, iris):
    torch = pytest.importorskip("torch", reason="torch is not installed here (CI installs its CPU wheel)")
    torch.manual_seed(0)
    module = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)))
    module.save(str(tmp_path / "model.pt"))
    batch, _ = iris
    expected = _torch_batch_predictions(module, batch)

    served.append(server := start(tmp_path, tmp_path, "torchscript"))

    status, body = server.v1_predict(batch.tolist())
    assert status == 200, body
    assert np.allclose(body["predictions"], expected, rtol=1e-6, atol=1e-6)
    status, body = server.v2_infer(batch, "FP32")
    assert status == 200, body
    assert body["outputs"][0]["shape"] == [len(batch), 3]
    assert np.allclose(np.reshape(body["outputs"][0]["data"], (-1, 3)), expected, rtol=1e-6, atol=1e-6)
    status, body = server.v1_predict([[1.0, 2.0, 3.0]])
    assert status == 400
    assert body["error"] == "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x3 and 4x8)"


def test_pytorch_model_saved_whole_predicts_like_the_module(tmp_path, served, iris):
    torch = pytest.importorskip("torch", reason="torch is not installed here (CI installs its CPU wheel)")
    torch.manual_seed(1)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).eval()
    torch.save(module, tmp_path / "model.pth")
    batch, _ = iris
    expected = _torch_batch_predictions(module, batch)

    served.append(server := start(tmp_path, tmp_path, "pytorch"))

    status, body = server.v1_predict(batch.tolist())
    assert status == 200, body
    assert np.allclose(body["predictions"], expected, rtol=1e-6, atol=1e-6)


def test_pytorch_weights_alone_are_refused_with_a_clear_message(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is not installed here (CI installs its CPU wheel)")
    torch.save(torch.nn.Linear(4, 2).state_dict(), tmp_path / "weights.pt")

    result = run_once(tmp_path, "pytorch")

    assert result.returncode == 1
    assert result.stderr.startswith(f"{PREFIX}{tmp_path / 'weights.pt'} holds a state_dict")


def test_custom_model_py_predicts(tmp_path, served):
    (tmp_path / "offset.txt").write_text("10")
    (tmp_path / "model.py").write_text(
        textwrap.dedent(
            """
            from pathlib import Path


            class Model:
                def load(self, model_dir):
                    self.offset = float(Path(model_dir, "offset.txt").read_text())

                def predict(self, instances):
                    if not all(isinstance(row, list) for row in instances):
                        raise ValueError("each instance is a list of numbers")
                    return [sum(row) + self.offset for row in instances]
            """
        )
    )

    served.append(server := start(tmp_path, tmp_path, "custom"))

    assert server.listening() == {("127.0.0.1", server.http_port)}, "without --grpc-port, no gRPC port"
    assert server.v1_predict([[1, 2], [3, 4.5]]) == (200, {"predictions": [13.0, 17.5]})
    status, body = server.v2_infer(np.array([[1.0, 2.0], [3.0, 4.5]]), "FP64")
    assert status == 200, body
    assert body["outputs"][0]["data"] == [13.0, 17.5]
    status, body = server.v1_predict([1, 2])
    assert status == 400
    assert body["error"] == "ValueError: each instance is a list of numbers"
