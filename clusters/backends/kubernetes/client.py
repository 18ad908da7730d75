"""The API connection of one cluster: an ApiClient, and Kubernetes errors turned into backend errors.

401/403 mean the cluster refuses us: BackendUnavailable, and the cluster is marked
unhealthy with the reason. 5xx, 429, timeouts and refused connections are worth
retrying: BackendError (the jobs worker backs off). 400/422 are the server's final
word on a manifest: BackendRejected with its message. 404 and 409 are answers the
callers handle (NotFoundError, ConflictError).
"""

from __future__ import annotations

import gc
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from clusters.backends.base import BackendError, BackendRejected, BackendUnavailable

if TYPE_CHECKING:
    from clusters.models import Cluster

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC while building many acyclic objects: a list of 10,000 jobs parses 5-10x faster."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class NotFoundError(BackendError):
    """404: the object (or its namespace, or its kind) is not there."""


class ConflictError(BackendError):
    """409: AlreadyExists on create, or a stale resourceVersion on replace."""


def server_message(exc: ApiException) -> str:
    """The Status message the API server sent, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except (TypeError, ValueError):
        pass
    return f"{exc.status} {exc.reason}".strip()


def kubeconfig_server(kubeconfig: str) -> str:
    """The server URL of the kubeconfig's current context ("" when it cannot be read)."""
    try:
        data = yaml.safe_load(kubeconfig) or {}
        contexts = {c["name"]: c["context"] for c in data.get("contexts") or []}
        clusters = {c["name"]: c["cluster"] for c in data.get("clusters") or []}
        context = contexts.get(data.get("current-context")) or next(iter(contexts.values()), {})
        cluster = clusters.get(context.get("cluster")) or next(iter(clusters.values()), {})
        return str(cluster.get("server") or "")
    except (yaml.YAMLError, AttributeError, KeyError, TypeError):
        return ""


def new_api_client(cluster: Cluster) -> k8s.ApiClient:
    """An ApiClient of its own for this cluster (never the module-global default configuration)."""
    configuration = type.__call__(k8s.Configuration)
    # No urllib3 retries: the jobs worker retries with back-off, and a hung server must fail within one timeout.
    configuration.retries = 0
    try:
        if cluster.in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)
            return k8s.ApiClient(configuration)
        config_dict = yaml.safe_load(cluster.kubeconfig or "")
        if not isinstance(config_dict, dict):
            raise BackendUnavailable(f"cluster {cluster.name} has no kubeconfig")
        return k8s_config.new_client_from_config_dict(
            config_dict, persist_config=False, client_configuration=configuration
        )
    except (k8s_config.ConfigException, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise BackendUnavailable(f"cluster {cluster.name}: the kubeconfig cannot be used: {exc}") from exc


class Connection:
    """One cluster's ApiClient and the error translation every call goes through."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        settings = cluster.settings or {}
        self.timeout = float(settings.get("request_timeout", DEFAULT_TIMEOUT))
        self._api_client: k8s.ApiClient | None = None
        self._lock = threading.Lock()
        self._known_healthy = cluster.healthy
        self.calls = 0  # API requests made, for benchmarks and logs

    @property
    def api_client(self) -> k8s.ApiClient:
        with self._lock:
            if self._api_client is None:
                self._api_client = new_api_client(self.cluster)
            return self._api_client

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api_client)

    @property
    def custom(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.api_client)

    def call(self, what: str, fn: Callable[..., T], *args: Any, mark_refusal: bool = True, **kwargs: Any) -> T:
        """Run one API call with the cluster's timeout; translate its failure.

        mark_refusal=False: a 401/403 still raises BackendUnavailable but leaves the cluster's
        health alone (for optional reads, such as the CRD list, that RBAC may deny).
        """
        kwargs.setdefault("_request_timeout", (min(self.timeout, 10.0), self.timeout))
        self.calls += 1
        try:
            result = fn(*args, **kwargs)
        except ApiException as exc:
            raise self.translate(what, exc, mark=mark_refusal) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # Timeouts, refused connections, broken responses: the server may answer later.
            raise BackendError(f"{what}: cluster {self.cluster.name} did not answer: {exc}") from exc
        if not self._known_healthy:
            self.mark_healthy()
        return result

    def translate(self, what: str, exc: ApiException, mark: bool = True) -> Exception:
        status = exc.status or 0
        message = server_message(exc)
        if status in (401, 403):
            reason = f"{what}: the cluster refuses us ({status}): {message}"
            if mark:
                self.mark_unhealthy(reason)
            return BackendUnavailable(reason)
        if status == 404:
            return NotFoundError(f"{what}: {message}")
        if status == 409:
            return ConflictError(f"{what}: {message}")
        if status in (400, 422):
            return BackendRejected(f"{what}: {message}")
        # 0 (SSL and websocket failures), 429, 5xx and anything unexpected: retry later.
        return BackendError(f"{what}: {message}")

    def mark_unhealthy(self, reason: str) -> None:
        from clusters.services import cluster_mark_unhealthy

        self._known_healthy = False
        cluster_mark_unhealthy(cluster_id=self.cluster.pk, reason=reason)
        log.warning("cluster %s marked unhealthy: %s", self.cluster.name, reason)

    def mark_healthy(self) -> None:
        from clusters.services import cluster_mark_healthy

        self._known_healthy = True
        if cluster_mark_healthy(cluster_id=self.cluster.pk):
            log.info("cluster %s answers again: marked healthy", self.cluster.name)

    def raw_json(
        self, what: str, fn: Callable[..., Any], *args: Any, mark_refusal: bool = True, **kwargs: Any
    ) -> dict[str, Any]:
        """A GET whose body is parsed here: the client's model deserialisation costs ~1 ms per pod."""
        response = self.call(what, fn, *args, mark_refusal=mark_refusal, _preload_content=False, **kwargs)
        try:
            with gc_paused():
                return json.loads(response.data)
        except ValueError as exc:
            raise BackendError(f"{what}: the answer is not JSON: {exc}") from exc
        finally:
            response.release_conn()
