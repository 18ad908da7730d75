"""Validation: every problem of a spec at once, by field path; the normalized spec it returns."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from clusters.backends.contract import storage
from clusters.backends.contract.quantity import MAX_INT64, parse_cpu, parse_duration, parse_memory
from jobs.spec import toolbox
from jobs.spec.checks import _choice, _command, _Errors, _fields, _integer, _string
from jobs.spec.text import document_problem
from jobs.spec.vocabulary import (
    _DNS_LABEL,
    _DNS_SUBDOMAIN,
    _ENV_NAME,
    _JOB_ID,
    _LABEL_MESSAGE,
    _LABEL_NAME,
    _MAX_GPU_TOTAL,
    _MAX_LIST,
    _MAX_TIMEOUT,
    _NO_SPACES,
    _PORT_NAME,
    _SLUG,
    ALL_FRAMEWORK_ROLES,
    DEFAULT_CPU,
    DEFAULT_MEMORY,
    FIELDS,
    FRAMEWORK_ROLES,
    INTERNAL_FRAMEWORK_ROLES,
    MAX_ENV,
    MAX_ENV_ENTRY,
    MAX_RETRIES,
    MAX_TASKS,
    OPTIONAL_FIELDS,
    PRIORITIES,
    REQUIRED_ROLES,
    RESERVED_ENV,
    ROLE_FIELDS,
    SCHEDULING_FIELDS,
    SINGLE_ROLES,
    TOLERATION_EFFECTS,
    TOLERATION_FIELDS,
    TOLERATION_OPERATORS,
    SpecError,
    _absent,
    _join,
    _type_name,
)

__all__ = ["_Errors", "_fields", "_integer", "_string", "role_resources", "totals", "validate"]


def _framework(value: Any, path: str, errs: _Errors) -> str | None:
    if isinstance(value, str) and value in INTERNAL_FRAMEWORK_ROLES:
        return value
    # The message names only what a user may submit: notebooks and TensorBoard have pages of their own.
    return _choice(value, path, errs, tuple(FRAMEWORK_ROLES))


def _env(value: Any, path: str, errs: _Errors) -> dict[str, str]:
    if not isinstance(value, Mapping):
        errs.add(path, f"must be a mapping of variable names to strings, not {_type_name(value)}")
        return {}
    if len(value) > MAX_ENV:
        errs.add(path, f"at most {MAX_ENV} variables, not {len(value)}")
        return {}
    result: dict[str, str] = {}
    for key, item in value.items():
        key_path = _join(path, key)
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            errs.add(key_path, "is not a variable name: letters, digits and '_', not starting with a digit")
        elif key in RESERVED_ENV:
            errs.add(key_path, "is set by the platform and cannot be set here")
        elif item is None:
            errs.add(key_path, 'needs a value (write "" for an empty one)')
        elif isinstance(item, bool | int | float):
            errs.add(key_path, f'must be a string, not {_type_name(item)}; put it in quotes, e.g. "{item}"')
        elif not isinstance(item, str):
            errs.add(key_path, f"must be a string, not {_type_name(item)}")
        elif "\x00" in item:
            errs.add(key_path, "must not contain NUL characters")
        elif len(key) + 1 + len(item.encode("utf-8", errors="replace")) > MAX_ENV_ENTRY:
            errs.add(key_path, f"is too long: a variable and its value take at most {MAX_ENV_ENTRY} bytes")
        else:
            result[key] = item
    return result


def _label_key(key: Any, path: str, errs: _Errors) -> bool:
    """A Kubernetes label key: an optional DNS subdomain prefix and '/', then a name of up to 63 characters."""
    if not isinstance(key, str):
        errs.add(path, "must be a string")
        return False
    prefix, _, name = key.rpartition("/")
    if (
        not name
        or len(name) > 63
        or not _LABEL_NAME.fullmatch(name)
        or ("/" in key and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)))
    ):
        errs.add(path, "is not a label key such as 'gpu-type' or 'example.com/pool'")
        return False
    return True


def _label_value(value: Any, path: str, errs: _Errors) -> str | None:
    if not isinstance(value, str) or len(value) > 63 or not _LABEL_NAME.fullmatch(value):
        errs.add(
            path,
            "must be a string of up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        )
        return None
    return value


def _quantity(value: Any, path: str, errs: _Errors, parse: Any) -> str | None:
    """The user's text, kept as written (a number becomes its text), once it parses to more than zero."""
    try:
        amount = parse(value)
    except ValueError as exc:
        errs.add(path, str(exc))
        return None
    if amount <= 0:
        errs.add(path, "must be more than 0")
        return None
    return value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)


def _role(value: Any, path: str, errs: _Errors) -> dict[str, Any] | None:
    if value is None:  # "worker:" with nothing under it: all defaults
        value = {}
    if _fields(value, path, ROLE_FIELDS, errs) is None:
        return None
    before = len(errs.errors)
    role: dict[str, Any] = {
        "replicas": _integer(value.get("replicas", 1), _join(path, "replicas"), errs, low=1, high=MAX_TASKS),
        "cpu": _quantity(value.get("cpu", DEFAULT_CPU), _join(path, "cpu"), errs, parse_cpu),
        "memory": _quantity(value.get("memory", DEFAULT_MEMORY), _join(path, "memory"), errs, parse_memory),
        "gpu": _integer(value.get("gpu", 0), _join(path, "gpu"), errs, low=0, high=_MAX_GPU_TOTAL),
        "command": [] if _absent(value.get("command")) else _command(value["command"], _join(path, "command"), errs),
        "image": "",
        "env": {} if _absent(value.get("env")) else _env(value["env"], _join(path, "env"), errs),
    }
    if not _absent(value.get("image")):
        role["image"] = _image(value["image"], _join(path, "image"), errs)
    return role if len(errs.errors) == before else None


def _image(value: Any, path: str, errs: _Errors) -> str:
    return _string(value, path, errs, max_len=1024, pattern=_NO_SPACES, message="must not contain spaces") or ""


def _roles(value: Any, framework: str | None, errs: _Errors) -> dict[str, dict[str, Any]] | None:
    """Each role checked on its own, then the framework's rules over all of them; None when any is wrong."""
    if _absent(value):
        errs.add("roles", "at least one role is required")
        return None
    if not isinstance(value, Mapping):
        errs.add("roles", f"must be a mapping of role names to resources, not {_type_name(value)}")
        return None
    if len(value) > MAX_TASKS:  # every role has a task at least
        errs.add("roles", f"a job has at most {MAX_TASKS} tasks; this one has {len(value)} roles")
        return None
    allowed = ALL_FRAMEWORK_ROLES.get(framework) if framework else None
    roles: dict[str, dict[str, Any]] = {}
    ok = True
    for name, body in value.items():
        path = _join("roles", name)
        if not isinstance(name, str):
            errs.add(path, "a role name must be a string")
            ok = False
        elif framework and allowed is not None and name not in allowed:
            errs.add(path, f"is not a {framework} role; one of {', '.join(allowed)}")
            ok = False
        elif framework == "batch" and (len(name) > 40 or not _DNS_LABEL.fullmatch(name)):
            errs.add(path, f"a role name {_LABEL_MESSAGE}, at most 40 characters")
            ok = False
        role = _role(body, path, errs)
        if role is None or not isinstance(name, str):
            ok = False
        else:
            roles[name] = role
    if framework:
        for name in REQUIRED_ROLES.get(framework, ()):
            if name not in value:
                errs.add(_join("roles", name), f"required: a {framework} job needs a {name}")
                ok = False
        for name in SINGLE_ROLES.get(framework, ()):
            if name in roles and roles[name]["replicas"] != 1:
                errs.add(f"roles.{name}.replicas", f"must be 1: a {framework} job has at most one {name}")
                ok = False
    if not ok:
        return None
    tasks = sum(role["replicas"] for role in roles.values())
    if tasks > MAX_TASKS:
        errs.add("roles", f"a job has at most {MAX_TASKS} tasks; this one has {tasks}")
        return None
    cpu, memory, gpu = _sum(roles)
    for what, amount, limit in (("cpu", cpu, MAX_INT64), ("memory", memory, MAX_INT64), ("gpus", gpu, _MAX_GPU_TOTAL)):
        if amount > limit:
            errs.add("roles", f"the job's {what} in all is too large to record")
            return None
    if allowed:  # the framework's own order, so stored specs and YAML read alike
        roles = {name: roles[name] for name in allowed if name in roles}
    return roles


def _sum(roles: Mapping[str, Mapping[str, Any]]) -> tuple[int, int, int]:
    cpu = memory = gpu = 0
    for role in roles.values():
        cpu += role["replicas"] * parse_cpu(role["cpu"])
        memory += role["replicas"] * parse_memory(role["memory"])
        gpu += role["replicas"] * role["gpu"]
    return cpu, memory, gpu


def _scheduling(value: Any, errs: _Errors) -> dict[str, Any]:
    result: dict[str, Any] = {"node_selector": {}, "tolerations": [], "queue": "", "gang": True, "oversell": 1.0}
    if _absent(value):
        return result
    if _fields(value, "scheduling", SCHEDULING_FIELDS, errs) is None:
        return result
    selector = value.get("node_selector")
    if not _absent(selector):
        path = "scheduling.node_selector"
        if not isinstance(selector, Mapping):
            errs.add(path, f"must be a mapping of label keys to values, not {_type_name(selector)}")
        else:
            for key, item in selector.items():
                if _label_key(key, _join(path, key), errs) and _label_value(item, _join(path, key), errs) is not None:
                    result["node_selector"][key] = item
    tolerations = value.get("tolerations")
    if not _absent(tolerations):
        if not isinstance(tolerations, list):
            errs.add("scheduling.tolerations", f"must be a list, not {_type_name(tolerations)}")
        elif len(tolerations) > _MAX_LIST:
            errs.add("scheduling.tolerations", f"at most {_MAX_LIST}")
        else:
            for i, item in enumerate(tolerations):
                toleration = _toleration(item, f"scheduling.tolerations.{i}", errs)
                if toleration:
                    result["tolerations"].append(toleration)
    if not _absent(value.get("queue")):
        queue = _string(
            value["queue"], "scheduling.queue", errs, max_len=253, pattern=_DNS_SUBDOMAIN, message=_LABEL_MESSAGE
        )
        result["queue"] = queue or ""
    if value.get("gang") is not None:
        if isinstance(value["gang"], bool):
            result["gang"] = value["gang"]
        else:
            errs.add("scheduling.gang", f"must be true or false, not {_type_name(value['gang'])}")
    oversell = value.get("oversell")
    if oversell is not None:
        if isinstance(oversell, bool) or not isinstance(oversell, int | float):
            errs.add("scheduling.oversell", f"must be a number, not {_type_name(oversell)}")
        elif not math.isfinite(oversell) or oversell < 1:
            errs.add("scheduling.oversell", "must be a finite number of at least 1")
        else:
            result["oversell"] = float(oversell)
    return result


def _toleration(value: Any, path: str, errs: _Errors) -> dict[str, str] | None:
    if _fields(value, path, TOLERATION_FIELDS, errs) is None:
        return None
    before = len(errs.errors)
    operator = _choice(value.get("operator") or "Equal", _join(path, "operator"), errs, TOLERATION_OPERATORS)
    key = value.get("key")
    if _absent(key):
        key = ""
        if operator == "Equal":  # only Exists may match every key
            errs.add(_join(path, "key"), "required unless operator is Exists")
    elif not _label_key(key, _join(path, "key"), errs):
        key = ""
    item = value.get("value")
    if _absent(item):
        item = ""
    elif operator == "Exists":
        errs.add(_join(path, "value"), "must be empty when operator is Exists")
    else:
        item = _label_value(item, _join(path, "value"), errs) or ""
    effect = value.get("effect")
    effect = "" if _absent(effect) else _choice(effect, _join(path, "effect"), errs, TOLERATION_EFFECTS)
    if len(errs.errors) != before:
        return None
    return {"key": key, "operator": operator or "", "value": item, "effect": effect or ""}


def validate(data: Any) -> dict[str, Any]:
    """The normalized spec; raises SpecError naming every problem by its path."""
    errs = _Errors()
    problem = document_problem(data)
    if problem is not None:  # before anything is recorded: such text would fail on its way out (JSON, MySQL)
        raise SpecError({problem[0]: [problem[1]]})
    if (
        _fields(data, "", (*FIELDS, *OPTIONAL_FIELDS), errs, "a mapping of fields (name, framework, roles, ...)")
        is None
    ):
        raise SpecError(errs.errors)
    spec: dict[str, Any] = dict.fromkeys(FIELDS)

    def optional(field: str, check: Any, default: Any = None) -> None:
        value = data.get(field)
        spec[field] = default if _absent(value) else check(value, field)

    def required(field: str, check: Any) -> None:
        if _absent(data.get(field)):
            errs.add(field, "required")
        else:
            spec[field] = check(data[field], field)

    def text(max_len: int, pattern: re.Pattern | None = None, message: str = "") -> Any:
        return lambda value, path: _string(value, path, errs, max_len=max_len, pattern=pattern, message=message)

    required("name", text(63, _DNS_LABEL, _LABEL_MESSAGE))
    optional("team", text(63, _DNS_LABEL, _LABEL_MESSAGE))
    optional("experiment", text(100, re.compile(r"\S(.*\S)?", re.DOTALL), "must not start or end with spaces"))
    optional("cluster", text(63, _SLUG, "must be letters, digits, '-' or '_'"))
    required("framework", lambda value, path: _framework(value, path, errs))
    optional("image", lambda value, path: _image(value, path, errs), "")
    optional("command", lambda value, path: _command(value, path, errs), [])
    optional("working_dir", text(4096, re.compile(r"/.*", re.DOTALL), "must be an absolute path"), "")
    optional("env", lambda value, path: _env(value, path, errs), {})
    raw_roles = data.get("roles")
    spec["roles"] = _roles(raw_roles, spec["framework"], errs)
    every_role_has_command = (
        isinstance(raw_roles, Mapping)
        and bool(raw_roles)
        and all(isinstance(role, Mapping) and not _absent(role.get("command")) for role in raw_roles.values())
    )
    if _absent(data.get("command")) and not every_role_has_command:
        errs.add("command", "required (or give every role its own command)")
    optional("priority", lambda value, path: _choice(value, path, errs, PRIORITIES), "normal")
    spec["scheduling"] = _scheduling(data.get("scheduling"), errs)
    optional("pre_job", text(10, _JOB_ID, "must be a job id such as j-3k9x2m4q"))
    optional(
        "registered_model",
        text(80, storage.REGISTERED_MODEL, "must be a registered model's version of the job's team, such as churn/3"),
    )
    optional(
        "app_source",
        text(80, storage.APP_SOURCE, "must be a published revision of one of the team's apps, such as demo/2"),
    )
    optional("inputs", _inputs(errs))
    optional("datasets", _datasets(errs))
    optional("debug", lambda value, path: toolbox.debug(value, errs))
    for field in OPTIONAL_FIELDS:
        if spec[field] is None:
            del spec[field]  # only a model server's or an app's job names one: other specs keep their shape
    optional("volumes", _volumes(errs), [])
    optional("timeout", _timeout(errs))
    optional("max_retries", lambda value, path: _integer(value, path, errs, low=0, high=MAX_RETRIES), 0)
    optional("ports", _ports(errs), {})
    _role_services(raw_roles, spec, errs)
    if errs.errors:
        raise SpecError(errs.errors)
    return spec


def _role_services(raw_roles: Any, spec: dict[str, Any], errs: _Errors) -> None:
    """Each role's ``services``, checked against the job's ports; kept in the normalized role only when given."""
    if not isinstance(raw_roles, Mapping):
        return
    for name, body in raw_roles.items():
        if not isinstance(body, Mapping) or _absent(body.get("services")):
            continue
        found = toolbox.services(body["services"], _join(_join("roles", name), "services"), errs, spec["ports"] or {})
        if found and spec["roles"] is not None and name in spec["roles"]:
            spec["roles"][name]["services"] = found


def _inputs(errs: _Errors) -> Any:
    def check(value: Any, path: str) -> dict[str, str] | None:
        if not isinstance(value, Mapping):
            errs.add(path, f"must be a mapping of names to job outputs, not {_type_name(value)}")
            return None
        if len(value) > storage.MAX_INPUTS:
            errs.add(path, f"at most {storage.MAX_INPUTS}")
            return None
        result: dict[str, str] = {}
        for name, where in value.items():
            item = _join(path, name)
            if not (isinstance(name, str) and storage.INPUT_NAME.fullmatch(name)):
                errs.add(item, "must be a name of lowercase letters, digits and '_', starting with a letter")
                continue
            text = _string(
                where, item, errs, max_len=500, pattern=storage.INPUT_SOURCE,
                message="must be a job's output folder such as j-3k9x2m4q/model_dir or j-3k9x2m4q/share_dir/data",
            )  # fmt: skip
            if text is not None:
                result[name] = text
        return result or None

    return check


def _datasets(errs: _Errors) -> Any:
    def check(value: Any, path: str) -> list[str] | None:
        if not isinstance(value, list):
            errs.add(path, f"must be a list of dataset versions such as imagenet@3, not {_type_name(value)}")
            return None
        if len(value) > storage.MAX_DATASETS:
            errs.add(path, f"at most {storage.MAX_DATASETS}")
            return None
        result: list[str] = []
        names: set[str] = set()
        for i, item in enumerate(value):
            where = f"{path}.{i}"
            text = _string(
                item, where, errs, max_len=80, pattern=storage.DATASET_REF,
                message="must be a dataset of the job's team and its version, such as imagenet@3",
            )  # fmt: skip
            if text is None:
                continue
            name = text.split("@", 1)[0]
            if len(name) > 63:
                errs.add(where, "a dataset's name has at most 63 characters")
            elif name in names:
                errs.add(where, "names a dataset twice: each is mounted at /datasets/{name}")
            else:
                names.add(name)
                result.append(text)
        return result or None

    return check


def _volumes(errs: _Errors) -> Any:
    def check(value: Any, path: str) -> list[str]:
        if not isinstance(value, list):
            errs.add(path, f"must be a list of volume names, not {_type_name(value)}")
            return []
        if len(value) > _MAX_LIST:
            errs.add(path, f"at most {_MAX_LIST}")
            return []
        names: list[str] = []
        for i, item in enumerate(value):
            name = _string(item, f"{path}.{i}", errs, max_len=63, pattern=_SLUG, message="must be a volume name")
            if name in names:
                errs.add(f"{path}.{i}", "is named twice")
            elif name:
                names.append(name)
        return names

    return check


def _timeout(errs: _Errors) -> Any:
    def check(value: Any, path: str) -> str | None:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            errs.add(path, str(exc))
            return None
        if seconds <= 0:
            errs.add(path, "must be longer than 0s")
        elif seconds > _MAX_TIMEOUT:
            errs.add(path, "must be at most 68 years")
        else:
            return value if isinstance(value, str) else f"{value}s"
        return None

    return check


def _ports(errs: _Errors) -> Any:
    def check(value: Any, path: str) -> dict[str, int]:
        if not isinstance(value, Mapping):
            errs.add(path, f"must be a mapping of names to port numbers, not {_type_name(value)}")
            return {}
        ports: dict[str, int] = {}
        for name, port in value.items():
            port_path = _join(path, name)
            if not isinstance(name, str) or len(name) > 15 or not _PORT_NAME.fullmatch(name):
                errs.add(
                    port_path, "a port name is up to 15 lowercase letters, digits and '-', with at least one letter"
                )
            elif (number := _integer(port, port_path, errs, low=1, high=65535)) is not None:
                ports[name] = number
        return ports

    return check


# --- what the rest of the platform reads ----------------------------------------------------


def role_resources(spec: dict) -> dict[str, dict]:
    """Each role of a validated spec, resolved: numbers for resources, the top-level command/image/env merged in."""
    result: dict[str, dict] = {}
    for name, role in spec["roles"].items():
        result[name] = {
            "replicas": role["replicas"],
            "cpu_milli": parse_cpu(role.get("cpu", DEFAULT_CPU)),
            "memory_bytes": parse_memory(role.get("memory", DEFAULT_MEMORY)),
            "gpu": role.get("gpu", 0),
            "command": list(role.get("command") or spec.get("command") or []),
            "image": role.get("image") or spec.get("image") or "",
            "env": {**(spec.get("env") or {}), **(role.get("env") or {})},
        }
    return result


def totals(spec: dict) -> tuple[int, int, int]:
    """Total (cpu_milli, memory_bytes, gpu) limits over every task of a validated spec."""
    cpu = memory = gpu = 0
    for role in role_resources(spec).values():
        cpu += role["replicas"] * role["cpu_milli"]
        memory += role["replicas"] * role["memory_bytes"]
        gpu += role["replicas"] * role["gpu"]
    return cpu, memory, gpu
