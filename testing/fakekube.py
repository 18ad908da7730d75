"""A small fake Kubernetes API server for tests: real HTTP on 127.0.0.1, a random port.

The real ``kubernetes`` client talks to it as to a cluster. It keeps objects per
(group, version, plural, namespace, name) and serves create (201 with uid,
resourceVersion and creationTimestamp), get, list (label selectors with
equality, comma-separated; ``status.phase!=X`` field selectors; across
namespaces), replace, merge-patch (status and spec), delete (the
propagationPolicy is recorded), pod logs (canned, followable), pod exec over a
websocket (an echoing shell that records resizes; or a program a test gives, ``on_exec``, with the
channels' bytes and the exit status as the API server sends them), ``/version``, discovery and
the CustomResourceDefinition list, core/v1 Events (``add_event``). Every request goes into a journal, and
faults can be injected: the next N requests matching a method and a path
pattern answer with a status, or hang past the client's timeout.

Tests play the operator: ``set_status`` on a job, ``add_pod`` for its pods, ``run_pods`` for all of a
job's pods; KServe: ``install("kserve")`` serves ``serving.kserve.io/v1beta1`` InferenceServices, and
``set_inference_service`` writes one's status as KServe reports it. As the API server does, an object's
``metadata.generation`` starts at 1 and grows with each change of its spec, and KServe's status records the
generation it saw. Argo: ``install("argo")`` serves ``argoproj.io/v1alpha1`` Workflows, and ``set_workflow``
writes one's status (phase, nodes) as Argo's controller does. The ``fake_kube`` fixture (also named ``kube``) is
in ``testing.plugin``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import queue
import re
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

Key = tuple[str, str, str, str, str]  # group, version, plural, namespace ("" when cluster-scoped), name

CLUSTER_SCOPED = {("", "v1", "namespaces"), ("", "v1", "nodes"), ("scheduling.volcano.sh", "v1beta1", "queues"),
                  ("scheduling.k8s.io", "v1", "priorityclasses"),
                  ("apiextensions.k8s.io", "v1", "customresourcedefinitions")}  # fmt: skip
KINDS = {"pods": "Pod", "namespaces": "Namespace", "resourcequotas": "ResourceQuota", "nodes": "Node",
         "pytorchjobs": "PyTorchJob", "tfjobs": "TFJob", "mpijobs": "MPIJob", "xgboostjobs": "XGBoostJob",
         "paddlejobs": "PaddleJob", "jobs": "Job", "queues": "Queue", "priorityclasses": "PriorityClass",
         "customresourcedefinitions": "CustomResourceDefinition", "services": "Service",
         "ingresses": "Ingress", "inferenceservices": "InferenceService", "events": "Event",
         "workflows": "Workflow"}  # fmt: skip
# The CRDs each operator installs, as check-connection looks for them.
OPERATOR_CRDS = {
    "training-operator": [("kubeflow.org", p, "v1") for p in ("pytorchjobs", "tfjobs", "mpijobs", "xgboostjobs",
                                                               "paddlejobs")],
    "volcano": [("batch.volcano.sh", "jobs", "v1alpha1"), ("scheduling.volcano.sh", "queues", "v1beta1"),
                ("scheduling.volcano.sh", "podgroups", "v1beta1")],
    "kserve": [("serving.kserve.io", "inferenceservices", "v1beta1")],
    "argo": [("argoproj.io", "workflows", "v1alpha1")],
}  # fmt: skip
ARGO_WORKFLOWS = ("argoproj.io", "v1alpha1", "workflows")
WS_MAGIC = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int  # 0: hang (sleep past the client's timeout, then drop the connection)
    remaining: int
    message: str = ""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any = None
    status: int = 0


@dataclass
class ExecSession:
    namespace: str
    pod: str
    command: list[str]
    stdin: bytearray = field(default_factory=bytearray)
    resizes: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    # What the client asked besides the command (container, stdin, stdout, stderr, tty), and, when a program
    # given with ``on_exec`` served it, its exit status.
    query: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None


class ExecChannels:
    """A program's side of an exec (``FakeKube.on_exec``): the client's stdin, and its stdout and stderr."""

    def __init__(self, send: Callable[[int, bytes], None]) -> None:
        self._send = send
        self._stdin: queue.Queue[bytes | None] = queue.Queue()
        self.ended = False  # the client's stdin ended (it closed the connection)

    def read(self, timeout: float | None = None) -> bytes | None:
        """The next bytes the client wrote; None once it has gone; b"" when nothing came within the timeout."""
        if self.ended:
            return None
        try:
            data = self._stdin.get(timeout=timeout)
        except queue.Empty:
            return b""
        if data is None:
            self.ended = True
        return data

    def write(self, data: bytes) -> None:
        if data:
            self._send(1, data)

    def write_stderr(self, data: bytes) -> None:
        if data:
            self._send(2, data)


# A program an exec runs instead of the echoing shell: given the session and its channels, it returns the exit
# status the API server reports on the status channel.
ExecProgram = Callable[[ExecSession, ExecChannels], int]


def process_program(rewrite: Callable[[list[str]], list[str]] | None = None, **popen: Any) -> ExecProgram:
    """An exec program that runs the command as a real process on this host (``rewrite`` maps the pod's paths
    to this host's): the client's stdin goes to its standard input (closed when the client goes), its standard
    output and error come back on their channels, its exit status on the status channel."""

    def run(session: ExecSession, channels: ExecChannels) -> int:
        argv = rewrite(list(session.command)) if rewrite else list(session.command)
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   bufsize=0, **popen)  # fmt: skip

        def feed() -> None:
            assert process.stdin is not None
            try:
                while (data := channels.read(timeout=None)) is not None:
                    process.stdin.write(data)
            except OSError:
                pass
            finally:
                try:
                    process.stdin.close()
                except OSError:
                    pass

        def errors() -> None:
            assert process.stderr is not None
            while data := process.stderr.read(65536):
                channels.write_stderr(data)

        threads = [threading.Thread(target=feed, daemon=True), threading.Thread(target=errors, daemon=True)]
        for thread in threads:
            thread.start()
        assert process.stdout is not None
        while data := process.stdout.read(65536):
            channels.write(data)
        code = process.wait()
        threads[1].join(timeout=5)
        return code if code >= 0 else 128 - code

    return run


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def labels_match(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def fields_match(obj: dict[str, Any], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        negate = "!=" in term
        path, value = re.split(r"!=|==|=", term, maxsplit=1)
        current: Any = obj
        for part in path.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        if (str(current) == value) == negate:
            return False
    return True


class FakeKube:
    """The store, the journal and the faults; ``url`` once started."""

    def __init__(self, version: str = "v1.29.4", operators: tuple[str, ...] = ("training-operator", "volcano")) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], bytes] = {}  # (namespace, pod) -> log
        self.follow_chunks: dict[tuple[str, str], list[bytes]] = {}  # streamed one by one when following
        self.journal: list[Request] = []
        self.faults: list[Fault] = []
        self.execs: list[ExecSession] = []
        self.exec_programs: list[tuple[Callable[[list[str]], bool], ExecProgram]] = []
        self.version = version
        self.token = "fake-token"
        self.hang_seconds = 3.0
        self._rv = 1000
        self._serialized: dict[Key, tuple[str | None, dict[str, Any], bytes]] = {}
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for operator in operators:
            self.install(operator)

    # --- life --------------------------------------------------------------------

    def start(self) -> FakeKube:
        fake = self

        class Handler(_Handler):
            kube = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # serve_forever checks for shutdown every poll_interval: the default 0.5 s would be every test's teardown.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name="fakekube", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url, "insecure-skip-tls-verify": True}}],
            "users": [{"name": "tester", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}],
            "current-context": "fake",
        }

    # --- the store ---------------------------------------------------------------------

    def next_rv(self) -> str:
        with self._lock:
            self._rv += 1
            return str(self._rv)

    def put(self, group: str, version: str, plural: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object directly (no HTTP, no journal): for filling the fake fast."""
        # A JSON round trip: the stored object shares nothing with the caller's, and is plain JSON.
        obj = json.loads(json.dumps(obj))
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_iso())
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = self.next_rv()
        if namespace:
            meta["namespace"] = namespace
        obj.setdefault("apiVersion", f"{group}/{version}" if group else version)
        obj.setdefault("kind", KINDS.get(plural, plural))
        with self._lock:
            self.objects[(group, version, plural, namespace, meta["name"])] = obj
        return obj

    def get(self, group: str, version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((group, version, plural, namespace, name))

    def serialized(self, key: Key, obj: dict[str, Any]) -> bytes:
        """An object's JSON, cached by resourceVersion (as the API server's watch cache keeps it serialised)."""
        rv = obj["metadata"].get("resourceVersion")
        cached = self._serialized.get(key)
        if cached is None or cached[0] != rv or cached[1] is not obj:
            cached = (rv, obj, json.dumps(obj).encode())
            self._serialized[key] = cached
        return cached[2]

    def of_kind(self, group: str, version: str, plural: str) -> list[dict[str, Any]]:
        return [o for (g, v, p, _, _), o in list(self.objects.items()) if (g, v, p) == (group, version, plural)]

    def install(self, operator: str) -> None:
        for group, plural, version in OPERATOR_CRDS[operator]:
            crd = {
                "metadata": {"name": f"{plural}.{group}"},
                "spec": {
                    "group": group,
                    "names": {"plural": plural, "kind": KINDS.get(plural, plural.title())},
                    "scope": "Namespaced" if plural != "queues" else "Cluster",
                    "versions": [{"name": version, "served": True, "storage": True}],
                },
            }
            self.put("apiextensions.k8s.io", "v1", "customresourcedefinitions", "", crd)

    def served(self, group: str, version: str, plural: str) -> bool:
        """Built-in groups always; a custom group/version/plural while a CRD serves it."""
        if group in ("", "apiextensions.k8s.io", "scheduling.k8s.io", "networking.k8s.io"):
            return True
        return any(
            c["spec"]["group"] == group and c["spec"]["names"]["plural"] == plural
            and any(v["name"] == version and v.get("served", True) for v in c["spec"]["versions"])
            for c in self.of_kind("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        )  # fmt: skip

    def uninstall(self, crd_name: str) -> None:
        with self._lock:
            self.objects.pop(("apiextensions.k8s.io", "v1", "customresourcedefinitions", "", crd_name), None)

    def set_status(self, group: str, version: str, plural: str, namespace: str, name: str, status: dict) -> None:
        """Play the operator: merge a status into an object."""
        with self._lock:
            obj = self.objects[(group, version, plural, namespace, name)]
            obj["status"] = merge_patch(obj.get("status") or {}, status)
            obj["metadata"]["resourceVersion"] = self.next_rv()

    def set_workflow(self, namespace: str, name: str, *, phase: str, nodes: dict[str, dict[str, Any]],
                     message: str = "") -> None:  # fmt: skip
        """Play Argo's controller: a Workflow's status (its phase and its nodes by id), replacing the one before."""
        status: dict[str, Any] = {"phase": phase, "nodes": nodes, "startedAt": now_iso()}
        if phase in ("Succeeded", "Failed", "Error"):
            status["finishedAt"] = now_iso()
        if message:
            status["message"] = message
        with self._lock:
            obj = self.objects[(*ARGO_WORKFLOWS, namespace, name)]
            obj["status"] = status
            obj["metadata"]["resourceVersion"] = self.next_rv()

    def set_inference_service(
        self,
        namespace: str,
        name: str,
        *,
        ready: bool,
        url: str = "",
        address: str = "",
        traffic: list[tuple[str, int]] | None = None,
        latest_created: str = "",
        latest_ready: str = "",
        previous: str = "",
        reason: str = "",
        message: str = "",
        grpc_url: str = "",
    ) -> None:
        """Play KServe: an InferenceService's whole status, as its controller writes it for the current spec.

        ``traffic`` holds (revision, percent) pairs; the one named ``latest_created`` is the latest revision.
        Not ready with a message: the Ready condition is False (a failed revision); without one, Unknown.
        """
        condition_status = "True" if ready else ("False" if message else "Unknown")
        condition = {"type": "Ready", "status": condition_status, "lastTransitionTime": now_iso()}
        if not ready:
            condition.update(reason=reason or ("RevisionFailed" if message else "RevisionMissing"), message=message)
        predictor: dict[str, Any] = {
            "latestCreatedRevision": latest_created,
            "latestReadyRevision": latest_ready,
            "traffic": [
                {"revisionName": revision, "percent": percent, "latestRevision": revision == latest_created}
                for revision, percent in traffic or []
            ],
        }
        if previous:
            predictor["previousRolledoutRevision"] = previous
        if grpc_url:
            predictor["grpcUrl"] = grpc_url
        if url:
            predictor["url"] = url
        status: dict[str, Any] = {
            "conditions": [{**condition, "type": "PredictorReady"}, condition],
            "components": {"predictor": predictor},
            "deploymentMode": "Serverless",
        }
        if url:
            status["url"] = url
        if address:
            status["address"] = {"url": address}
        with self._lock:
            obj = self.objects[("serving.kserve.io", "v1beta1", "inferenceservices", namespace, name)]
            status["observedGeneration"] = obj["metadata"].get("generation", 1)
            status["deploymentMode"] = (obj["metadata"].get("annotations") or {}).get(
                "serving.kserve.io/deploymentMode", "Serverless"
            )
            obj["status"] = status
            obj["metadata"]["resourceVersion"] = self.next_rv()

    def add_pod(
        self,
        namespace: str,
        name: str,
        labels: dict[str, str],
        *,
        phase: str = "Running",
        container: str = "main",
        node: str = "node-1",
        ip: str = "10.0.0.1",
        state: dict[str, Any] | None = None,
        annotations: dict[str, str] | None = None,
        requests: dict[str, str] | None = None,
        log: bytes | None = None,
        conditions: list[dict[str, Any]] | None = None,
        ready: bool | None = None,
        spec: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A pod (``spec``: the pod spec it was made from, e.g. a rendered template's; ``ready``: its main
        container's readiness, by default whether it runs)."""
        pod = {
            "metadata": {"name": name, "labels": labels, "annotations": annotations or {}},
            "spec": {
                "nodeName": node,
                "containers": [{"name": container, "image": "img", "resources": {"requests": requests or {}}}],
            },
            "status": {
                "phase": phase,
                "podIP": ip,
                "startTime": now_iso(),
                "containerStatuses": [
                    {"name": container, "ready": phase == "Running" if ready is None else ready, "restartCount": 0,
                     "state": state or ({"running": {"startedAt": now_iso()}} if phase == "Running" else {})}
                ],
            },
        }  # fmt: skip
        if spec is not None:
            pod["spec"] = {**copy.deepcopy(spec), "nodeName": node}
        if conditions is not None:
            pod["status"]["conditions"] = conditions
        if log is not None:
            self.logs[(namespace, name)] = log
        return self.put("", "v1", "pods", namespace, pod)

    def add_event(
        self,
        namespace: str,
        involved: dict[str, Any],
        reason: str,
        message: str,
        *,
        type: str = "Warning",
        count: int = 1,
        name: str = "",
    ) -> dict[str, Any]:
        """Play the scheduler or the kubelet: a core/v1 Event about an object (its kind and name); again with the
        same name, the event repeats (its count and lastTimestamp change, as the API server's aggregation does)."""
        name = name or f"{involved['name']}.{uuid.uuid4().hex[:12]}"
        key = ("", "v1", "events", namespace, name)
        existing = self.objects.get(key)
        event = {
            "metadata": {"name": name, **({"uid": existing["metadata"]["uid"]} if existing else {})},
            "involvedObject": {"namespace": namespace, **involved},
            "reason": reason,
            "message": message,
            "type": type,
            "count": count,
            "firstTimestamp": existing["firstTimestamp"] if existing else now_iso(),
            "lastTimestamp": now_iso(),
            "source": {"component": "default-scheduler" if reason == "FailedScheduling" else "kubelet"},
        }
        return self.put("", "v1", "events", namespace, event)

    def add_node(self, name: str, allocatable: dict[str, str], unschedulable: bool = False) -> None:
        node = {
            "metadata": {"name": name},
            "spec": {"unschedulable": unschedulable},
            "status": {"allocatable": allocatable, "conditions": [{"type": "Ready", "status": "True"}]},
        }
        self.put("", "v1", "nodes", "", node)

    def on_exec(self, program: ExecProgram, match: Callable[[list[str]], bool] | None = None) -> None:
        """Execs whose command ``match`` accepts (every exec without it) run ``program``, the latest given first;
        the others get the echoing shell."""
        self.exec_programs.insert(0, (match or (lambda _command: True), program))

    # --- the journal and faults ---------------------------------------------------------

    def fail(self, method: str, pattern: str, status: int, times: int = 1, message: str = "") -> None:
        """The next `times` requests whose method and path match answer `status` (0: hang)."""
        self.faults.append(Fault(method.upper(), re.compile(pattern), status, times, message))

    def hang(self, method: str, pattern: str, times: int = 1) -> None:
        self.fail(method, pattern, 0, times)

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.remaining > 0 and fault.method in (method, "*") and fault.pattern.search(path):
                    fault.remaining -= 1
                    return fault
        return None

    def requests(self, method: str | None = None, path: str | None = None) -> list[Request]:
        return [
            r
            for r in list(self.journal)
            if (method is None or r.method == method) and (path is None or re.search(path, r.path))
        ]

    def clear_journal(self) -> None:
        self.journal.clear()


def _next_generation(current: dict[str, Any], updated: dict[str, Any]) -> None:
    """The API server counts changes of an object's spec (not of its status or metadata) in its generation."""
    generation = current["metadata"].get("generation", 1)
    updated["metadata"]["generation"] = generation + 1 if updated.get("spec") != current.get("spec") else generation


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}  # fmt: skip


REASONS = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "AlreadyExists", 422: "Invalid",
           500: "InternalError", 503: "ServiceUnavailable", 429: "TooManyRequests", 400: "BadRequest"}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    kube: FakeKube
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle and delayed ACKs add 40 ms a request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # --- plumbing -------------------------------------------------------------------------

    def _send(self, code: int, body: Any, record: Request | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        if record is not None:
            record.status = code
        self.send_response(code)
        self.send_header("Content-Type", "application/json" if not isinstance(body, bytes) else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, message: str, record: Request | None = None) -> None:
        self._send(code, _status(code, REASONS.get(code, "Error"), message), record)

    def _handle(self, method: str) -> None:
        parsed = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        record = Request(method, parsed.path, query, body)
        self.kube.journal.append(record)
        if self.headers.get("Authorization") != f"Bearer {self.kube.token}":
            return self._error(401, "Unauthorized", record)
        fault = self.kube.take_fault(method, parsed.path)
        if fault is not None:
            if fault.status == 0:
                time.sleep(self.kube.hang_seconds)
                self.close_connection = True
                return None
            return self._error(fault.status, fault.message or f"injected {fault.status}", record)
        try:
            self._route(method, parsed.path, query, body, record)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return None

    do_GET = lambda self: self._handle("GET")  # noqa: E731, N815
    do_POST = lambda self: self._handle("POST")  # noqa: E731, N815
    do_PUT = lambda self: self._handle("PUT")  # noqa: E731, N815
    do_PATCH = lambda self: self._handle("PATCH")  # noqa: E731, N815
    do_DELETE = lambda self: self._handle("DELETE")  # noqa: E731, N815

    # --- routes -------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, str], body: Any, record: Request) -> None:
        kube = self.kube
        if path.rstrip("/") == "/version":
            major, minor = kube.version.lstrip("v").split(".")[:2]
            return self._send(200, {"major": major, "minor": minor, "gitVersion": kube.version}, record)
        if path in ("/api", "/apis"):
            return self._send(200, {"kind": "APIGroupList", "groups": []}, record)
        parts = [p for p in path.split("/") if p]
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return self._error(404, f"no route {path}", record)
        if not rest:
            return self._discovery(group, version, record)
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        plural, name, sub = rest[0], (rest[1] if len(rest) > 1 else ""), (rest[2] if len(rest) > 2 else "")
        if (group, version, plural) in CLUSTER_SCOPED and namespace:
            return self._error(404, f"{plural} is cluster-scoped", record)
        key = (group, version, plural, namespace, name)
        if sub == "log" and method == "GET":
            return self._log(namespace, name, query, record)
        if sub == "exec":
            return self._exec(namespace, name, query, record)
        if not name:
            if method == "GET":
                return self._list(group, version, plural, namespace, query, record)
            if method == "POST":
                return self._create(group, version, plural, namespace, body, record)
            return self._error(405, "method not allowed", record)
        with kube._lock:
            current = kube.objects.get(key)
        if current is None:
            return self._error(404, f'{plural} "{name}" not found', record)
        if method == "GET":
            return self._send(200, current, record)
        if method == "DELETE":
            with kube._lock:
                kube.objects.pop(key, None)
            policy = query.get("propagationPolicy") or (body or {}).get("propagationPolicy") or ""
            record.query["propagationPolicy"] = policy
            # The API server answers a delete with the object as it was (a Status for some kinds).
            return self._send(200, current, record)
        if method == "PUT":
            sent_rv = (body.get("metadata") or {}).get("resourceVersion")
            if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                return self._error(409, "the object has been modified", record)
            updated = copy.deepcopy(body)
            updated["metadata"] = {**current["metadata"], **updated.get("metadata", {})}
            updated["metadata"]["resourceVersion"] = kube.next_rv()
            if sub != "status":
                updated["status"] = current.get("status", updated.get("status"))
            _next_generation(current, updated)
            with kube._lock:
                kube.objects[key] = updated
            return self._send(200, updated, record)
        if method == "PATCH":
            patch = body if sub != "status" else {"status": (body or {}).get("status")}
            updated = merge_patch(current, patch)
            updated["metadata"]["resourceVersion"] = kube.next_rv()
            _next_generation(current, updated)
            with kube._lock:
                kube.objects[key] = updated
            return self._send(200, updated, record)
        return self._error(405, "method not allowed", record)

    def _discovery(self, group: str, version: str, record: Request) -> None:
        crds = self.kube.of_kind("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        resources = [
            {"name": c["spec"]["names"]["plural"], "kind": c["spec"]["names"]["kind"], "namespaced": True, "verbs": []}
            for c in crds
            if c["spec"]["group"] == group and any(v["name"] == version for v in c["spec"]["versions"])
        ]
        if group and not resources:
            return self._error(404, f"{group}/{version} not served", record)
        self._send(200, {"kind": "APIResourceList", "groupVersion": f"{group}/{version}".strip("/"),
                         "resources": resources}, record)  # fmt: skip

    def _list(self, group: str, version: str, plural: str, namespace: str, query: dict, record: Request) -> None:
        kube = self.kube
        if not kube.served(group, version, plural):
            return self._error(404, f"the server could not find the requested resource ({plural}.{group})", record)
        selector, field_selector = query.get("labelSelector", ""), query.get("fieldSelector", "")
        with kube._lock:
            items = [
                kube.serialized(key, obj)
                for key, obj in kube.objects.items()
                if key[:3] == (group, version, plural)
                and (not namespace or key[3] == namespace)
                and (not selector or labels_match(obj["metadata"].get("labels") or {}, selector))
                and (not field_selector or fields_match(obj, field_selector))
            ]
            head = {"apiVersion": f"{group}/{version}".strip("/"), "kind": f"{KINDS.get(plural, plural)}List",
                    "metadata": {"resourceVersion": str(kube._rv)}}  # fmt: skip
        data = json.dumps(head).encode()[:-1] + b', "items": [' + b",".join(items) + b"]}"
        self._send(200, data, record)

    def _create(self, group: str, version: str, plural: str, namespace: str, body: Any, record: Request) -> None:
        if not self.kube.served(group, version, plural):
            return self._error(404, f"the server could not find the requested resource ({plural}.{group})", record)
        name = (body.get("metadata") or {}).get("name", "")
        key = (group, version, plural, namespace, name)
        namespaced = namespace and (group, version, plural) != ("", "v1", "namespaces")
        if namespaced and ("", "v1", "namespaces", "", namespace) not in self.kube.objects:
            return self._error(404, f'namespaces "{namespace}" not found', record)
        if key in self.kube.objects:
            return self._error(409, f'{plural}.{group} "{name}" already exists', record)
        created = self.kube.put(group, version, plural, namespace, body)
        self._send(201, created, record)

    def _log(self, namespace: str, name: str, query: dict[str, str], record: Request) -> None:
        kube = self.kube
        if ("", "v1", "pods", namespace, name) not in kube.objects:
            return self._error(404, f'pods "{name}" not found', record)
        data = kube.logs.get((namespace, name), b"")
        if query.get("follow") != "true":
            record.status = 200
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        # Followed: chunked, one chunk per piece the test queued, then the end.
        record.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in [data, *kube.follow_chunks.get((namespace, name), [])]:
            if chunk:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
                time.sleep(0.01)
        self.wfile.write(b"0\r\n\r\n")
        return None

    # --- exec over a websocket (channel protocol v4) -----------------------------------------

    def _exec(self, namespace: str, name: str, query: dict[str, str], record: Request) -> None:
        if self.headers.get("Upgrade", "").lower() != "websocket":
            return self._error(400, "exec needs a websocket upgrade", record)
        commands = parse_qs(urlparse(self.path).query).get("command", [])
        session = ExecSession(namespace, name, commands, query={k: v for k, v in query.items() if k != "command"})
        self.kube.execs.append(session)
        program = next((run for match, run in list(self.kube.exec_programs) if match(commands)), None)
        accept = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] + WS_MAGIC).encode()).digest())
        record.status = 101
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.send_header("Sec-WebSocket-Protocol", "v4.channel.k8s.io")
        self.end_headers()
        self.wfile.flush()
        if program is not None:
            return self._exec_program(session, program)
        self._ws_send(bytes([1]) + b"$ ")
        while True:
            frame = self._ws_read()
            if frame is None:
                break
            opcode, payload = frame
            if opcode == 8:  # close
                self._ws_send(b"", opcode=8)
                break
            if not payload:
                continue
            channel, data = payload[0], payload[1:]
            if channel == 0:
                session.stdin += data
                if b"exit" in bytes(session.stdin):
                    self._ws_send(bytes([3]) + b'{"status":"Success"}')
                    self._ws_send(b"", opcode=8)
                    break
                self._ws_send(bytes([1]) + data)  # the shell echoes
            elif channel == 4:
                session.resizes.append(json.loads(data))
        session.closed = True
        self.close_connection = True
        return None

    def _exec_program(self, session: ExecSession, program: ExecProgram) -> None:
        """Serve an exec with a test's program: frames from the client are read on a thread of their own."""
        lock = threading.Lock()

        def send(channel: int, data: bytes, opcode: int = 2) -> None:
            with lock:
                self._ws_send(bytes([channel]) + data if opcode == 2 else data, opcode=opcode)

        channels = ExecChannels(send)

        def receive() -> None:
            try:
                while (frame := self._ws_read()) is not None:
                    opcode, payload = frame
                    if opcode == 8:
                        break
                    if opcode in (1, 2) and payload:
                        if payload[0] == 0:
                            session.stdin += payload[1:]
                            channels._stdin.put(bytes(payload[1:]))
                        elif payload[0] == 4:
                            session.resizes.append(json.loads(payload[1:]))
            except (OSError, ValueError):
                pass
            finally:
                channels._stdin.put(None)

        reader = threading.Thread(target=receive, daemon=True, name="fakekube-exec")
        reader.start()
        try:
            code = program(session, channels)
        except Exception as exc:  # a broken program: the exec's internal error, said on stderr
            channels.write_stderr(f"fakekube: the exec program failed: {exc!r}\n".encode())
            code = 1
        session.exit_code = code
        if code == 0:
            status: dict[str, Any] = {"metadata": {}, "status": "Success"}
        else:
            status = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                      "message": f"command terminated with non-zero exit code: exit status {code}",
                      "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}  # fmt: skip
        send(3, json.dumps(status).encode())
        send(0, b"", opcode=8)
        reader.join(timeout=5)
        session.closed = True
        self.close_connection = True
        return None

    def _ws_read(self) -> tuple[int, bytes] | None:
        head = self.rfile.read(2)
        if len(head) < 2:
            return None
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            length = struct.unpack(">H", self.rfile.read(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", self.rfile.read(8))[0]
        mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
        return opcode, data

    def _ws_send(self, payload: bytes, opcode: int = 2) -> None:
        header = bytes([0x80 | opcode])
        if len(payload) < 126:
            header += bytes([len(payload)])
        elif len(payload) < 65536:
            header += bytes([126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([127]) + struct.pack(">Q", len(payload))
        try:
            self.wfile.write(header + payload)
            self.wfile.flush()
        except OSError:
            pass


# --- test support: jobs to render, a cluster on the fake ---------------------------------------

ROLES = {
    "pytorch": [("master", 1), ("worker", 2)],
    "tensorflow": [("chief", 1), ("ps", 1), ("worker", 2), ("evaluator", 1)],
    "mpi": [("launcher", 1), ("worker", 2)],
    "xgboost": [("master", 1), ("worker", 2)],
    "paddle": [("master", 1), ("worker", 2)],
    "batch": [("driver", 1), ("executor", 3)],
    "notebook": [("notebook", 1)],
    "tensorboard": [("tensorboard", 1)],
}


def make_job(framework: str = "pytorch", job_id: str = "j-ab12cd34", *, gpu: int = 0, **fields: Any):
    """A fully resolved JobDescription, as the jobs app would hand it to a backend."""
    from pathlib import Path

    from django.conf import settings

    from clusters.backends.base import JobDescription, TaskDescription
    from clusters.backends.contract.storage import container_env, places, task_log_path

    owner = fields.pop("owner", "alice")
    tasks = []
    for role, replicas in ROLES[framework]:
        for index in range(replicas):
            name = f"{role}-{index}"
            env = {"LEARNING_RATE": "0.1", "RANK": str(index), **container_env(job_id, name, owner)}
            tasks.append(
                TaskDescription(
                    role=role, index=index, replicas=replicas, name=name, image="registry.example/train:1",
                    command=["python", "train.py"], working_dir="/workspace", env=env, cpu_milli=2500,
                    memory_bytes=4 * 2**30, gpu=gpu, storage={"model_dir": f"{job_id}/model_dir"},
                    ports={"web": 8888} if framework in ("notebook", "tensorboard") else {},
                    log_path=str(task_log_path(Path(settings.EASYAI_STORAGE_ROOT), job_id, name)),
                    places=places(job_id, name, owner),
                )
            )  # fmt: skip
    values: dict[str, Any] = {"job_id": job_id, "name": "train resnet", "team": "vision", "owner": owner,
                              "framework": framework, "priority": "normal", "tasks": tasks}  # fmt: skip
    values.update(fields)
    return JobDescription(**values)


def make_cluster(fake: FakeKube, **fields: Any):
    """A saved Kubernetes cluster whose kubeconfig points at the fake (short timeouts for hang tests)."""
    import yaml

    from clusters.models import Cluster

    values: dict[str, Any] = {
        "name": "gpu-a",
        "kind": Cluster.Kind.KUBERNETES,
        "namespace_prefix": "easyai-",
        "nfs_server": "nfs.example.org",
        "nfs_path": "/export/easyai",
        "settings": {"request_timeout": 1},
    }
    values.update(fields)
    cluster = Cluster(**values)
    cluster.kubeconfig = yaml.safe_dump(fake.kubeconfig())
    cluster.save()
    return cluster


NS = "easyai-vision"  # the team namespace running_fake starts with
PYTORCH = ("kubeflow.org", "v1", "pytorchjobs")
VCJOB = ("batch.volcano.sh", "v1alpha1", "jobs")


def run_pods(
    fake: FakeKube, kind: tuple[str, str, str], name: str, *, from_template: bool = False, **pod_fields: Any
) -> list[dict[str, Any]]:
    """Play the operator: a pod per replica, labelled as training-operator (or Volcano) labels them;
    ``from_template``: with the template's annotations and pod spec too, as the operators copy them."""
    from clusters.backends.kubernetes import manifests as m

    obj = fake.get(*kind, NS, name)
    pods = []
    if kind == VCJOB:
        replicas = [(t["name"], t) for t in obj["spec"]["tasks"]]
    else:
        field = next(k for k in obj["spec"] if k.endswith("ReplicaSpecs"))
        replicas = [(t.lower(), r) for t, r in obj["spec"][field].items()]
    for role, replica in replicas:
        template = replica["template"]
        for index in range(replica["replicas"]):
            labels = dict(template["metadata"]["labels"])
            annotations = {}
            if kind == VCJOB:
                annotations = {m.VC_TASK_SPEC: role, m.VC_TASK_INDEX: str(index)}
            else:
                labels.update({m.TO_REPLICA_TYPE: role, m.TO_REPLICA_INDEX: str(index)})
            if from_template:
                annotations = {**(template["metadata"].get("annotations") or {}), **annotations}
                pod_fields = {**pod_fields, "spec": template["spec"]}
            pod_name = f"{name}-{role}-{index}"
            pods.append(
                fake.add_pod(NS, pod_name, labels, annotations=annotations,
                             container=template["spec"]["containers"][0]["name"],
                             ip=f"10.1.0.{len(pods) + 1}", log=f"hello from {role}-{index}\n".encode(), **pod_fields)
            )  # fmt: skip
    return pods


def running_fake() -> Iterator[FakeKube]:
    """A started fake with the team namespace "easyai-vision", stopped afterwards (for a fixture to yield from)."""
    fake = FakeKube().start()
    fake.put("", "v1", "namespaces", "", {"metadata": {"name": "easyai-vision"}})
    yield fake
    fake.stop()
