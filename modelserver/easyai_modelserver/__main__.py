"""python -m easyai_modelserver --model-dir DIR --format FMT --name NAME --http-port P [--grpc-port G] ..."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from easyai_modelserver import loaders

PROG = "easyai-modelserver"


def _port(value: str) -> int:
    port = int(value)
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a port (1-65535)")
    return port


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return number


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description="Serve one model folder over KServe V1, V2 and gRPC.")
    parser.add_argument("--model-dir", required=True, type=Path, help="the folder that holds the model's files")
    parser.add_argument("--format", required=True, choices=loaders.FORMATS, help="the model's format")
    parser.add_argument("--name", required=True, help="the model's name in URLs (/v1/models/NAME, /v2/models/NAME)")
    parser.add_argument("--http-port", required=True, type=_port, help="the HTTP port (V1 and V2 REST)")
    parser.add_argument("--grpc-port", type=_port, default=None, help="the V2 gRPC port; without it, no gRPC")
    parser.add_argument("--host", default="127.0.0.1", help="the address both ports bind to (default 127.0.0.1)")
    parser.add_argument("--workers", type=_positive, default=1, help="HTTP worker processes (default 1)")
    return parser.parse_args(argv)


def _one_line(message: str) -> str:
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model_dir = args.model_dir.absolute()
    # The model is loaded before KServe is imported or a port is bound: a folder without a usable model
    # fails in a moment, with one line, and leaves no port behind.
    try:
        predictor = loaders.load(args.format, model_dir)
    except loaders.LoadError as exc:
        print(f"{PROG}: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    # KServe parses sys.argv with its own options when it is imported.
    sys.argv = sys.argv[:1]
    from easyai_modelserver.model import ServedModel
    from easyai_modelserver.server import serve

    model = ServedModel(args.name, args.format, model_dir, predictor)
    try:
        serve(model, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port, workers=args.workers)
    except SystemExit as exc:  # uvicorn's, when it cannot bind: it has logged why
        return exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # gRPC's port taken, most often
        print(f"{PROG}: {_one_line(f'{type(exc).__name__}: {exc}')}", file=sys.stderr)
        return 1
    return 0


def _exit(status: int) -> None:
    # The servers have stopped: the interpreter's own teardown (collecting what KServe and the model's
    # library imported) would take seconds more, and a revision's stop waits for this process.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    _exit(main())
