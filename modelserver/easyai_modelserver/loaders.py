"""One loader per model format: find the model in the folder, load it, and answer a Predictor.

Nothing here imports KServe, and each loader imports only its own library, so a folder that holds no model
is refused in a fraction of a second and a format never pays for another's imports.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# A job writes its metrics beside its model (the portal's registry reads them): never a model file.
METRICS_FILE = "metrics.json"

FORMATS = ("pytorch", "torchscript", "onnx", "sklearn", "xgboost", "tensorflow", "huggingface", "custom")

# Errors a model raises on a batch it cannot take (a wrong width, a wrong type, a ragged list): the client's
# mistake, answered 400 with the model's message. Anything else is the server's, answered 500.
INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, IndexError, KeyError)


class InputError(ValueError):
    """A batch the model cannot take; the message is the client's answer as it stands."""


class LoadError(Exception):
    """The folder holds no usable model for the format, or the model failed to load; the message is one line."""


class Predictor:
    """A loaded model: predict() takes a batch and answers one result per instance.

    A batch is a list (the V1 `instances`) or a numpy array (a V2 input tensor). Predictors whose models take
    Python values (custom, huggingface) set `takes_lists` and always receive a list.
    """

    takes_lists = False
    input_errors: tuple[type[BaseException], ...] = INPUT_ERRORS

    def predict(self, batch: Any) -> Any:
        raise NotImplementedError


def load(model_format: str, model_dir: Path) -> Predictor:
    """Load the model of `model_format` from `model_dir`, or raise LoadError saying why not."""
    loader = _LOADERS.get(model_format)
    if loader is None:
        raise LoadError(f"unknown model format {model_format!r} (one of: {', '.join(FORMATS)})")
    if not model_dir.is_dir():
        raise LoadError(f"model folder {model_dir} does not exist")
    try:
        return loader(model_dir)
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError(f"could not load the {model_format} model in {model_dir}: {type(exc).__name__}: {exc}")


def _files(model_dir: Path) -> list[Path]:
    """Every file under the folder, links to folders not followed, hidden ones left out."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(model_dir):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        found.extend(Path(dirpath, name) for name in sorted(filenames) if not name.startswith("."))
    return found


def _find_file(model_dir: Path, patterns: Sequence[str], what: str) -> Path:
    """The model file: of those matching `patterns`, the shallowest; of several as shallow, the one named model.*."""
    candidates = [
        path
        for path in _files(model_dir)
        if any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns) and path != model_dir / METRICS_FILE
    ]
    if not candidates:
        raise LoadError(f"no {what} ({', '.join(patterns)}) in {model_dir}")
    depth = min(len(path.relative_to(model_dir).parts) for path in candidates)
    shallowest = [path for path in candidates if len(path.relative_to(model_dir).parts) == depth]
    if len(shallowest) == 1:
        return shallowest[0]
    named = [path for path in shallowest if path.stem == "model"]
    if len(named) == 1:
        return named[0]
    names = ", ".join(path.relative_to(model_dir).as_posix() for path in shallowest)
    raise LoadError(f"several {what} files in {model_dir} ({names}): keep one, or name the one to serve model.*")


def _as_array(batch: Any, dtype: Any = None) -> np.ndarray:
    return np.asarray(batch, dtype=dtype)


def _as_list(batch: Any) -> list:
    if isinstance(batch, np.ndarray):
        batch = batch.tolist()
    if not isinstance(batch, list):
        raise TypeError(f"expected a list of instances, got {type(batch).__name__}")
    # BYTES tensors from gRPC arrive as bytes; models that take Python values expect text.
    return [item.decode("utf-8") if isinstance(item, bytes) else item for item in batch]


def _import(module: str, model_format: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise LoadError(
            f"the {model_format} format needs the {package} package, which is not installed "
            f"in the model server's environment ({exc})"
        )


# scikit-learn


class SklearnPredictor(Predictor):
    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, batch: Any) -> Any:
        if isinstance(batch, list) and batch and isinstance(batch[0], dict):
            # Instances given as {column: value} rows: a model fitted on a DataFrame knows its columns.
            import pandas as pd

            return self.model.predict(pd.DataFrame(batch))
        return self.model.predict(_as_array(batch))


def load_sklearn(model_dir: Path) -> Predictor:
    path = _find_file(model_dir, ("*.joblib", "*.pkl", "*.pickle"), "scikit-learn model")
    joblib = _import("joblib", "sklearn", "joblib")
    model = joblib.load(path)
    if not callable(getattr(model, "predict", None)):
        raise LoadError(f"{path} holds a {type(model).__name__}, which has no predict()")
    return SklearnPredictor(model)


# XGBoost


class XGBoostPredictor(Predictor):
    def __init__(self, booster: Any, xgboost: Any) -> None:
        self.booster = booster
        self.xgboost = xgboost

    def predict(self, batch: Any) -> Any:
        return self.booster.predict(self.xgboost.DMatrix(_as_array(batch, np.float32)))


def load_xgboost(model_dir: Path) -> Predictor:
    path = _find_file(model_dir, ("*.json", "*.ubj", "*.bst", "*.model"), "XGBoost model")
    xgboost = _import("xgboost", "xgboost", "xgboost")
    booster = xgboost.Booster()
    booster.load_model(str(path))
    return XGBoostPredictor(booster, xgboost)


# ONNX

_ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


class OnnxPredictor(Predictor):
    def __init__(self, session: Any, input_errors: tuple[type[BaseException], ...]) -> None:
        self.session = session
        first_input = session.get_inputs()[0]
        self.input_name = first_input.name
        self.input_dtype = _ONNX_DTYPES.get(first_input.type, np.float32)
        # Only the first output is answered, so only it is computed (a classifier's ZipMap is skipped).
        self.output_names = [session.get_outputs()[0].name]
        self.input_errors = INPUT_ERRORS + input_errors

    def predict(self, batch: Any) -> Any:
        return self.session.run(self.output_names, {self.input_name: _as_array(batch, self.input_dtype)})[0]


def load_onnx(model_dir: Path) -> Predictor:
    path = _find_file(model_dir, ("*.onnx",), "ONNX model")
    ort = _import("onnxruntime", "onnx", "onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

    return OnnxPredictor(session, (InvalidArgument,))


# PyTorch and TorchScript


class TorchPredictor(Predictor):
    def __init__(self, module: Any, torch: Any) -> None:
        self.module = module
        self.torch = torch

    def predict(self, batch: Any) -> Any:
        torch = self.torch
        inputs = torch.from_numpy(_as_array(batch, np.float32))
        try:
            with torch.no_grad():
                output = self.module(inputs)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as exc:
            # A wrong width or rank surfaces from torch as a RuntimeError: the client's mistake. TorchScript
            # puts its interpreter's traceback first and torch's own error on the last line.
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            message = lines[-1] if lines else ""
            if not re.match(r"\w+(Error|Exception): ", message):
                message = f"{type(exc).__name__}: {message}"
            raise InputError(message) from exc
        if isinstance(output, dict):
            output = next(iter(output.values()))
        elif isinstance(output, (tuple, list)):
            output = output[0]
        return output.detach().cpu().numpy()


def _torch_file(model_dir: Path, model_format: str) -> tuple[Path, Any]:
    label = "TorchScript model" if model_format == "torchscript" else "PyTorch model"
    path = _find_file(model_dir, ("*.pt", "*.pth"), label)
    return path, _import("torch", model_format, "torch (PyTorch)")


def load_torchscript(model_dir: Path) -> Predictor:
    path, torch = _torch_file(model_dir, "torchscript")
    module = torch.jit.load(str(path), map_location="cpu")
    module.eval()
    return TorchPredictor(module, torch)


def load_pytorch(model_dir: Path) -> Predictor:
    path, torch = _torch_file(model_dir, "pytorch")
    # A whole pickled module names its class by module: one defined in a .py file beside it can be found.
    sys.path[:0] = sorted({str(path.parent), str(model_dir)})
    try:
        # torch.load hands a TorchScript archive on to torch.jit.load itself.
        model = torch.load(str(path), map_location="cpu", weights_only=False)
    except (AttributeError, ModuleNotFoundError) as exc:
        raise LoadError(
            f"could not load the pytorch model {path}: {exc} (the model's class must be importable: "
            f"put the .py file that defines it in the folder, or save the model as TorchScript)"
        )
    if isinstance(model, dict):
        raise LoadError(
            f"{path} holds a state_dict (weights only), not a model: save the whole model with "
            f"torch.save(model), or as TorchScript"
        )
    if not isinstance(model, torch.nn.Module):
        raise LoadError(f"{path} holds a {type(model).__name__}, not a torch.nn.Module")
    model.eval()
    return TorchPredictor(model, torch)


# Hugging Face


class HuggingFacePredictor(Predictor):
    takes_lists = True

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def predict(self, batch: Any) -> Any:
        return list(self.pipeline(_as_list(batch)))


def load_huggingface(model_dir: Path) -> Predictor:
    config = _find_file(model_dir, ("config.json",), "Hugging Face model")
    transformers = _import("transformers", "huggingface", "transformers")
    return HuggingFacePredictor(transformers.pipeline(model=str(config.parent)))


# TensorFlow


class TensorFlowPredictor(Predictor):
    def __init__(self, signature: Any, tf: Any) -> None:
        self.signature = signature
        self.tf = tf
        _, kwargs = signature.structured_input_signature
        self.input_name = sorted(kwargs)[0]
        self.input_dtype = kwargs[self.input_name].dtype
        self.input_errors = (*INPUT_ERRORS, tf.errors.InvalidArgumentError)

    def predict(self, batch: Any) -> Any:
        inputs = self.tf.constant(_as_array(batch), dtype=self.input_dtype)
        outputs = self.signature(**{self.input_name: inputs})
        return outputs[sorted(outputs)[0]].numpy()


class KerasPredictor(Predictor):
    def __init__(self, model: Any, tf: Any) -> None:
        self.model = model
        self.input_errors = (*INPUT_ERRORS, tf.errors.InvalidArgumentError)

    def predict(self, batch: Any) -> Any:
        return self.model.predict(_as_array(batch, np.float32), verbose=0)


def _saved_model(model_dir: Path) -> Path:
    saved_model = ("saved_model.pb", "saved_model.pbtxt")
    if not any((model_dir / name).is_file() for name in saved_model):
        # TF Serving's layout: one numbered folder per version, the highest served.
        versions = [path for path in model_dir.glob("*/saved_model.pb*") if path.parent.name.isdigit()]
        versions = [path for path in versions if path.name in saved_model]
        if versions:
            return max(versions, key=lambda path: int(path.parent.name))
    return _find_file(model_dir, (*saved_model, "*.keras", "*.h5"), "TensorFlow model")


def load_tensorflow(model_dir: Path) -> Predictor:
    path = _saved_model(model_dir)
    tf = _import("tensorflow", "tensorflow", "tensorflow")
    if path.suffix in (".keras", ".h5"):
        return KerasPredictor(tf.keras.models.load_model(str(path)), tf)
    loaded = tf.saved_model.load(str(path.parent))
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise LoadError(f"the SavedModel in {path.parent} has no serving_default signature")
    return TensorFlowPredictor(signature, tf)


# custom: the folder's model.py


class CustomPredictor(Predictor):
    takes_lists = True

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, batch: Any) -> Any:
        return self.model.predict(_as_list(batch))


def load_custom(model_dir: Path) -> Predictor:
    path = _find_file(model_dir, ("model.py",), "custom model")
    # model.py may import its own helper modules from its folder.
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("easyai_custom_model", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    model_class = getattr(module, "Model", None)
    if not isinstance(model_class, type):
        raise LoadError(f"{path} defines no class Model (with load(self, model_dir) and predict(self, instances))")
    model = model_class()
    model.load(str(path.parent))
    return CustomPredictor(model)


_LOADERS: dict[str, Callable[[Path], Predictor]] = {
    "pytorch": load_pytorch,
    "torchscript": load_torchscript,
    "onnx": load_onnx,
    "sklearn": load_sklearn,
    "xgboost": load_xgboost,
    "tensorflow": load_tensorflow,
    "huggingface": load_huggingface,
    "custom": load_custom,
}
