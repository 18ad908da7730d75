"""Backend registry: one backend object per cluster, chosen by the cluster's kind."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from clusters.backends.base import Backend

if TYPE_CHECKING:
    from clusters.models import Cluster

_override: dict[str, Backend] = {}
_cache: dict[tuple, Backend] = {}
_lock = threading.Lock()


def use_backend(cluster_name: str, backend: Backend | None) -> None:
    """Tests swap a cluster's backend (None restores the real one)."""
    if backend is None:
        _override.pop(cluster_name, None)
    else:
        _override[cluster_name] = backend


def get_backend(cluster: Cluster) -> Backend:
    if cluster.name in _override:
        return _override[cluster.name]
    # Every field a backend reads: an admin's change reaches the next call without a restart.
    key = (
        cluster.pk,
        cluster.kind,
        cluster.kubeconfig_encrypted,
        repr(sorted(cluster.settings.items())),
        cluster.in_cluster,
        cluster.namespace_prefix,
        cluster.nfs_server,
        cluster.nfs_path,
        cluster.gpu_resource_name,
        cluster.scheduler,
        repr(cluster.image_pull_secrets),
        cluster.ingress_host,
    )
    with _lock:
        backend = _cache.get(key)
        if backend is None:
            if cluster.kind == "local":
                from clusters.backends.local import LocalBackend

                backend = LocalBackend(cluster)
            elif cluster.kind == "kubernetes":
                from clusters.backends.kubernetes import KubernetesBackend

                backend = KubernetesBackend(cluster)
            else:
                raise ValueError(f"unknown cluster kind {cluster.kind!r}")
            _cache[key] = backend
    return backend
