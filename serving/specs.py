"""A revision's job spec on the local backend, built without side effects: the model server over the version's
files (``/mnt/models`` in a pod, ``$registered_model_dir`` locally), its HTTP and gRPC ports."""

from __future__ import annotations

import shlex
from typing import Any

from django.conf import settings

HTTP_PORT = 8080  # KServe's ports in a pod; locally each named port gets a free host port instead
GRPC_PORT = 8081
PREDICTOR_TASK = "predictor-0"


def revision_command(service_name: str, model_format: str) -> str:
    return (
        "exec python -m easyai_modelserver --model-dir \"$registered_model_dir\" "
        f"--format {shlex.quote(model_format)} --name {shlex.quote(service_name)} "
        '--http-port "$EASYAI_PORT_HTTP" --grpc-port "$EASYAI_PORT_GRPC"'
    )


def revision_spec(*, service, version, number: int) -> dict[str, Any]:
    """The single-task job that runs revision ``number`` of ``service``, serving ``version``."""
    return {
        "name": f"{service.name}-r{number}"[:63].rstrip("-"),
        "team": service.team.slug,
        "cluster": service.cluster.name,
        "framework": "serving",
        "image": settings.EASYAI_MODEL_SERVER_IMAGE,
        "command": revision_command(service.name, version.format),
        "registered_model": f"{version.model.name}/{version.number}",
        # min_replicas model servers; the serving proxy spreads the revision's calls over those that answer.
        "roles": {
            "predictor": {
                "replicas": max(1, service.min_replicas),
                "cpu": service.cpu,
                "memory": service.memory,
                "gpu": service.gpu,
            }
        },
        "ports": {"http": HTTP_PORT, "grpc": GRPC_PORT},
    }
