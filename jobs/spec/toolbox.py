"""The debug toolbox's part of a spec: a role's background ``services`` and the job's ``debug`` hold.

Pure, like the rest of the spec. The cluster's maximum hold (``debug_hold_max`` in its settings) is checked once
the cluster is known (``jobs.services``), with ``hold_max`` and ``hold_problem`` from here.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from clusters.backends.contract.quantity import parse_duration
from jobs.spec.checks import _argv_ok, _Errors, _fields, _integer, _string
from jobs.spec.vocabulary import (
    _MAX_TIMEOUT,
    _PORT_NAME,
    DEBUG_FIELDS,
    DEFAULT_DEBUG_HOLD_MAX,
    MAX_SERVICE_COMMAND,
    MAX_SERVICES,
    SERVICE_FIELDS,
    _absent,
    _join,
    _type_name,
)

_HEALTH_PATH = re.compile(r"/[\x21-\x7e]*")  # an absolute request path: printable ASCII, no spaces


def services(value: Any, path: str, errs: _Errors, ports: Mapping[str, int]) -> list[dict[str, Any]] | None:
    """A role's services, normalized (``health`` only when given); None (reported) when any is wrong.

    ``ports`` are the job's named ports, which every task of the role serves too: a service takes neither
    their names nor their numbers."""
    if not isinstance(value, list):
        errs.add(path, f"must be a list of services (name, command, port, health), not {_type_name(value)}")
        return None
    if len(value) > MAX_SERVICES:
        errs.add(path, f"at most {MAX_SERVICES} services in a role, not {len(value)}")
        return None
    before = len(errs.errors)
    taken: dict[int, str] = {number: f"ports.{name}" for name, number in ports.items()}
    names: set[str] = set()
    result: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        where = _join(path, i)
        if _fields(item, where, SERVICE_FIELDS, errs, "a mapping of name, command, port and health") is None:
            continue
        service: dict[str, Any] = {}
        name = _service_name(item.get("name"), _join(where, "name"), errs, ports, names)
        if name is not None:
            names.add(name)
            service["name"] = name
        command = _service_command(item.get("command"), _join(where, "command"), errs)
        if command is not None:
            service["command"] = command
        port_path = _join(where, "port")
        if _absent(item.get("port")):
            errs.add(port_path, "required: the port the service listens on")
        elif (port := _integer(item["port"], port_path, errs, low=1, high=65535)) is not None:
            if port in taken:
                errs.add(port_path, f"port {port} is taken by {taken[port]}")
            else:
                taken[port] = where
                service["port"] = port
        if not _absent(item.get("health")):
            health = _string(
                item["health"], _join(where, "health"), errs, max_len=1024, pattern=_HEALTH_PATH,
                message="must be an HTTP path starting with '/', such as /healthz (no spaces)",
            )  # fmt: skip
            if health is not None:
                service["health"] = health
        result.append(service)
    return result if len(errs.errors) == before else None


def _service_name(value: Any, path: str, errs: _Errors, ports: Mapping[str, int], names: set[str]) -> str | None:
    if _absent(value):
        errs.add(path, "required: the service's name")
        return None
    # The name is also the task's port name (on Kubernetes a container port's name: IANA_SVC_NAME).
    if not isinstance(value, str) or len(value) > 15 or not _PORT_NAME.fullmatch(value):
        errs.add(path, "a service name is up to 15 lowercase letters, digits and '-', with at least one letter")
        return None
    if value in ports:
        errs.add(path, f"{value!r} is the name of one of the job's ports (ports.{value})")
        return None
    if value in names:
        errs.add(path, f"names the service {value!r} twice in this role")
        return None
    return value


def _service_command(value: Any, path: str, errs: _Errors) -> str | list[str] | None:
    """Text run by sh, or a list of arguments (kept as given; ``command_text`` joins it for sh)."""
    if _absent(value):
        errs.add(path, "required: what the service runs (a string for sh, or a list of arguments)")
        return None
    if isinstance(value, str):
        if not value.strip():
            errs.add(path, "must not be blank")
            return None
        return _string(value, path, errs, max_len=MAX_SERVICE_COMMAND)
    if not isinstance(value, list):
        errs.add(path, f"must be a string (run by sh) or a list of strings, not {_type_name(value)}")
        return None
    ok = _argv_ok(value, path, errs)
    if ok and len(shlex.join(value)) > MAX_SERVICE_COMMAND:
        errs.add(path, f"must be at most {MAX_SERVICE_COMMAND} characters in all")
        ok = False
    return list(value) if ok else None


def services_of(spec: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A validated spec's background services, as (role, service) in the spec's order; empty for most jobs."""
    return [
        (role, service)
        for role, body in (spec.get("roles") or {}).items()
        for service in (body.get("services") or [] if isinstance(body, Mapping) else [])
    ]


def command_text(command: str | list[str]) -> str:
    """A service's command as the text sh runs: a list of arguments is quoted for it."""
    return command if isinstance(command, str) else shlex.join(command)


def debug(value: Any, errs: _Errors) -> dict[str, str] | None:
    """``{"keep_failed": DURATION}`` or ``{"pause_on_failure": DURATION}``, normalized as ``timeout`` is."""
    if _fields(value, "debug", DEBUG_FIELDS, errs, "a mapping with keep_failed or pause_on_failure") is None:
        return None
    given = [field for field in DEBUG_FIELDS if not _absent(value.get(field))]
    if len(given) != 1:
        if not any(key not in DEBUG_FIELDS for key in value):  # an unknown field was reported already
            errs.add("debug", "give one of keep_failed and pause_on_failure (a duration such as 30m or 2h)")
        return None
    field = given[0]
    path = f"debug.{field}"
    try:
        seconds = parse_duration(value[field])
    except ValueError as exc:
        errs.add(path, str(exc))
        return None
    if seconds <= 0:
        errs.add(path, "must be longer than 0s")
        return None
    if seconds > _MAX_TIMEOUT:
        errs.add(path, "must be at most 68 years")
        return None
    return {field: value[field] if isinstance(value[field], str) else f"{value[field]}s"}


def hold_of(spec: Mapping[str, Any]) -> tuple[str, int]:
    """A normalized spec's hold: (mode, seconds), or ("", 0) when a failed task is not kept."""
    for field, duration in (spec.get("debug") or {}).items():
        return field, parse_duration(duration)
    return "", 0


def hold_max(cluster_settings: Any) -> int:
    """The longest hold a cluster allows, in seconds: its ``debug_hold_max`` setting (a duration), else an hour."""
    value = cluster_settings.get("debug_hold_max") if isinstance(cluster_settings, Mapping) else None
    if value is None:
        return DEFAULT_DEBUG_HOLD_MAX
    try:
        return parse_duration(value)
    except ValueError:
        return DEFAULT_DEBUG_HOLD_MAX  # a cluster's setting that does not read is refused when it is saved


def hold_problem(spec: Mapping[str, Any], cluster_name: str, cluster_settings: Any) -> dict[str, list[str]]:
    """The spec's hold against the cluster's maximum: {path: [problem]}, empty when it fits."""
    mode, seconds = hold_of(spec)
    limit = hold_max(cluster_settings)
    if not mode or seconds <= limit:
        return {}
    return {
        f"debug.{mode}": [
            f"must be at most {_duration_text(limit)}: the longest hold cluster {cluster_name} allows "
            "(its debug_hold_max)"
        ]
    }


def _duration_text(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
