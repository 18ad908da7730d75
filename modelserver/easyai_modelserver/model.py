"""The KServe model that serves one loaded Predictor over V1 (`instances`) and V2 (`InferRequest`) bodies."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from kserve import Model
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.utils.numpy_codec import from_np_dtype

from easyai_modelserver import loaders

OUTPUT_NAME = "predict"


class ServedModel(Model):
    def __init__(self, name: str, model_format: str, model_dir: Path, predictor: loaders.Predictor) -> None:
        super().__init__(name)
        self.model_format = model_format
        self.model_dir = model_dir
        self.predictor: loaders.Predictor | None = predictor
        self.ready = True

    # With several HTTP workers KServe pickles the model into each spawned worker: the loaded model (an
    # ONNX session, a TorchScript module) may not pickle, so each worker loads its own from the folder.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["predictor"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.predictor = loaders.load(self.model_format, self.model_dir)

    def load(self) -> bool:
        if self.predictor is None:
            self.predictor = loaders.load(self.model_format, self.model_dir)
        self.ready = True
        return self.ready

    def predict(
        self,
        payload: dict | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict | InferResponse:
        if isinstance(payload, InferRequest):
            result = self._run(_v2_batch(payload, self.predictor.takes_lists))
            return self._v2_response(payload, result)
        return {"predictions": _to_list(self._run(_v1_batch(payload)))}

    def _run(self, batch: Any) -> Any:
        try:
            return self.predictor.predict(batch)
        except loaders.InputError as exc:
            raise InvalidInput(str(exc))
        except self.predictor.input_errors as exc:
            raise InvalidInput(f"{type(exc).__name__}: {exc}")

    def _v2_response(self, request: InferRequest, result: Any) -> InferResponse:
        array = _to_array(result)
        output = InferOutput(name=OUTPUT_NAME, shape=list(array.shape), datatype=from_np_dtype(array.dtype))
        output.set_data_from_numpy(array, binary_data=request.use_binary_outputs)
        return InferResponse(
            response_id=request.id or str(uuid.uuid4()),
            model_name=self.name,
            infer_outputs=[output],
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )


def _v1_batch(payload: Any) -> list:
    if isinstance(payload, bytes):
        # KServe hands a body on undecoded when its content type is not JSON's (curl's default, say).
        try:
            payload = json.loads(payload)
        except ValueError as exc:
            raise InvalidInput(f"the body is not JSON: {exc}")
    if not isinstance(payload, dict):
        raise InvalidInput('the body must be a JSON object with "instances": a list of inputs')
    instances = payload.get("instances", payload.get("inputs"))
    if not isinstance(instances, list):
        raise InvalidInput('"instances" must be a list of inputs')
    return instances


def _v2_batch(request: InferRequest, takes_lists: bool) -> Any:
    if len(request.inputs) != 1:
        raise InvalidInput(f"the model takes one input tensor, the request has {len(request.inputs)}")
    try:
        array = request.inputs[0].as_numpy()
    except InvalidInput:
        raise
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"input {request.inputs[0].name!r}: {exc}")
    return array.tolist() if takes_lists else array


def _to_list(result: Any) -> list:
    if isinstance(result, np.ndarray):
        return result.tolist()
    if isinstance(result, list):
        return result
    if hasattr(result, "tolist"):  # pandas and numpy values
        return result.tolist()
    return list(result)


def _to_array(result: Any) -> np.ndarray:
    if isinstance(result, np.ndarray):
        array = result
    else:
        try:
            array = np.asarray(result)
        except ValueError:  # ragged: one item per instance
            items = list(result)
            array = np.empty(len(items), dtype=np.object_)
            for index, item in enumerate(items):
                array[index] = _text(item)
    if array.dtype.kind in "USO":
        # V2 sends text as BYTES; anything structured (a pipeline's dicts) goes as its JSON.
        items = [_text(item) for item in array.ravel().tolist()]
        array = np.array(items, dtype=np.object_).reshape(array.shape)
    return array


def _text(item: Any) -> str | bytes:
    if isinstance(item, (str, bytes)):
        return item
    if isinstance(item, (dict, list)):
        return json.dumps(item)
    return str(item)
