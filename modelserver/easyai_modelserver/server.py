"""KServe's ModelServer, bound to one host, with gRPC optional and no log line per request.

KServe 0.21 binds HTTP and gRPC to every interface and logs each request (an access line, a timing line,
a gRPC method line, a traceback for each bad body); a task's server binds to --host and logs its start,
its stop and its errors.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import warnings
from concurrent import futures
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from grpc import StatusCode, aio
from kserve import ModelServer
from kserve import logging as kserve_logging
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING, MAX_GRPC_MESSAGE_LENGTH
from kserve.errors import InvalidInput, ModelNotFound
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess, RESTServerProcess
from kserve.protocol.rest.server import RESTServer

from easyai_modelserver.model import ServedModel

logger = logging.getLogger("easyai_modelserver")

_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s"

# KServe's own logging config, shortened, with the per-request loggers (uvicorn's access log and KServe's
# latency trace) given no handler: uvicorn writes no access line when its logger has none.
LOG_CONFIG: dict[str, Any] = copy.deepcopy(kserve_logging.KSERVE_LOG_CONFIG)
LOG_CONFIG["formatters"]["kserve"]["fmt"] = _FORMAT
LOG_CONFIG["formatters"]["uvicorn"]["fmt"] = "%(asctime)s.%(msecs)03d %(levelprefix)s %(name)s: %(message)s"
LOG_CONFIG["loggers"]["kserve.trace"] = {"handlers": [], "level": "WARNING", "propagate": False}
LOG_CONFIG["loggers"]["uvicorn.access"] = {"handlers": [], "level": "WARNING", "propagate": False}
LOG_CONFIG["loggers"]["easyai_modelserver"] = {"handlers": ["kserve"], "level": "INFO", "propagate": False}


def _one_line(exc: Exception) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


async def _invalid_input(_: Request, exc: InvalidInput) -> JSONResponse:
    logger.warning("bad request: %s", _one_line(exc))
    return JSONResponse(status_code=400, content={"error": str(exc)})


async def _model_not_found(_: Request, exc: ModelNotFound) -> JSONResponse:
    logger.warning("not found: %s", exc)
    return JSONResponse(status_code=404, content={"error": str(exc)})


async def _invalid_body(_: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI answers a V2 body that fails its schema with 422; the inference protocols say 400. The V2
    # body is InferenceRequest or raw bytes: the complaint that it is not bytes says nothing.
    errors = [error for error in exc.errors() if tuple(error.get("loc", ()))[1:2] != ("bytes",)] or exc.errors()
    problems = "; ".join(f"{_field(error.get('loc', ()))}: {error.get('msg')}" for error in errors)
    logger.warning("bad request: %s", problems)
    return JSONResponse(status_code=400, content={"error": problems or "malformed request body"})


def _field(loc: Any) -> str:
    parts = [str(part) for part in loc if part not in ("body", "InferenceRequest")]
    return ".".join(parts) or "body"


class QuietRESTServer(RESTServer):
    def __init__(self, *args: Any, host: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = host

    def create_application(self) -> None:
        # KServe 0.21 answers with ORJSONResponse, which FastAPI deprecates with a warning: nothing for an
        # operator to act on. Filtered here because each HTTP worker process builds its own application.
        warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
        super().create_application()

    def _add_middlewares(self, app: Any) -> None:
        # KServe's only middleware is a timing log line per request.
        pass

    def _add_exception_handlers(self, app: Any) -> None:
        super()._add_exception_handlers(app)
        app.add_exception_handler(InvalidInput, _invalid_input)
        app.add_exception_handler(ModelNotFound, _model_not_found)
        app.add_exception_handler(RequestValidationError, _invalid_body)


class QuietExceptionInterceptor(ExceptionToStatusInterceptor):
    async def handle_exception(self, ex: Exception, request_or_iterator: Any, context: Any, method_name: str) -> None:
        if isinstance(ex, InvalidInput):
            logger.warning("bad request: %s", _one_line(ex))
            await context.abort(StatusCode.INVALID_ARGUMENT, ex.reason)
        else:
            await super().handle_exception(ex, request_or_iterator, context, method_name)


class PatientRESTServerMultiProcess(RESTServerMultiProcess):
    """KServe's HTTP workers, of which only one that has exited is replaced.

    KServe also replaces a worker that does not answer its ping within 5 s, from half a second after the
    worker started: a worker still importing KServe and loading its model (seconds, on a busy host) is
    killed and replaced, and its replacement too.
    """

    async def keep_subprocess_alive(self, sockets: list[Any]) -> None:
        for index, process in enumerate(self._processes):
            if self.should_exit.is_set():
                return
            if process._process.exitcode is None:
                continue
            logger.warning("HTTP worker %s exited with %s: starting another", process.pid, process._process.exitcode)
            replacement = RESTServerProcess(sockets, self._rest_server.run, log_config_file=self.log_config_file)
            replacement.start()
            self._processes[index] = replacement


class BoundGRPCServer(GRPCServer):
    def __init__(self, host: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._host = host

    async def start(self, max_workers: int) -> None:
        options = [
            ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_LENGTH),
            ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_LENGTH),
        ]
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(QuietExceptionInterceptor(),),
            options=options,
        )
        servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._server.add_insecure_port(f"{host}:{self._port}")
        logger.info("gRPC server on %s:%s", host, self._port)
        await self._server.start()
        await self._server.wait_for_termination()


class BoundModelServer(ModelServer):
    def __init__(self, *, host: str, http_port: int, grpc_port: int | None, workers: int) -> None:
        super().__init__(
            http_port=http_port,
            grpc_port=grpc_port or 0,
            workers=workers,
            enable_grpc=grpc_port is not None,
            enable_docs_url=False,
            enable_latency_logging=False,
            grace_period=10,
        )
        self.host = host

    def start(self, models: list[Any]) -> None:
        """ModelServer.start, with the REST and gRPC servers bound to self.host."""
        self._register_and_check_atleast_one_model_is_ready(models)
        rest_args = (FASTAPI_APP_IMPORT_STRING, self.dataplane, self.model_repository_extension, self.http_port)
        rest_kwargs = {"workers": self.workers, "grace_period": self.grace_period, "event_loop": self.event_loop}
        rest_server = QuietRESTServer(*rest_args, host=self.host, **rest_kwargs)
        if self.workers > 1:
            self._rest_multiprocess_server = PatientRESTServerMultiProcess(
                *rest_args, log_config_file=LOG_CONFIG, **rest_kwargs
            )
            self._rest_multiprocess_server._rest_server = rest_server
            self.servers.append(self._rest_multiprocess_server.start())
        else:
            self._rest_server = rest_server
            self.servers.append(rest_server.start())
        if self.enable_grpc:
            self._grpc_server = BoundGRPCServer(
                self.host,
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                kwargs={},
                grace_period=self.grace_period,
            )
            self.servers.append(self._grpc_server.start(self.max_threads))
        logger.info("HTTP server on %s:%s, %s worker(s)", self.host, self.http_port, self.workers)
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())


def serve(model: ServedModel, *, host: str, http_port: int, grpc_port: int | None, workers: int) -> None:
    """Serve `model` until SIGTERM or SIGINT."""
    kserve_logging.configure_logging(LOG_CONFIG)
    BoundModelServer(host=host, http_port=http_port, grpc_port=grpc_port, workers=workers).start([model])
