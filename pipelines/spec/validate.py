"""Validation of a pipeline spec: every problem at once, by field path; the normalized spec it returns.

The checks run in passes over what the earlier ones found: each field on its own; then the graph (unknown
steps in ``depends``, cycles); then every reference of every step (templates in its job and ``foreach``, refs
in ``when``: known params, steps it depends on, declared outputs, ``item`` only in a foreach step); then each
step's job, rendered with sample values, by the job spec's own validation.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import yaml

from clusters.backends.contract.quantity import parse_duration
from jobs.spec import SpecError
from jobs.spec import validate as validate_job
from jobs.spec.text import _Dumper, document_problem
from jobs.spec.validate import _Errors, _fields, _integer, _string
from jobs.spec.vocabulary import _DNS_LABEL, _LABEL_MESSAGE, _absent, _join, _type_name
from pipelines.spec.expressions import (
    STATUSES,
    STEP_NAME,
    ExpressionError,
    depends_names,
    parse_depends,
    parse_when,
    when_references,
)
from pipelines.spec.templating import REF_FORMS, TEMPLATE, classify, references, render_job

# Stable, human order: also the order of the normalized spec's keys.
FIELDS = ("name", "team", "description", "params", "steps")
STEP_FIELDS = ("name", "job", "depends", "requires", "when", "outputs", "retry", "timeout", "cache", "foreach")
OPTIONAL_STEP_FIELDS = ("register_model",)
# A step that registers a model instead of running a job: what the model registry takes (the portal does it, with the
# run owner's rights, when the step's turn comes; its outputs are the model's name and the new version's number).
REGISTER_FIELDS = ("name", "from", "path", "format", "metrics", "description")
REGISTER_OUTPUTS = ("model", "version")
PARAM_FIELDS = ("type", "default")
OUTPUT_KINDS = ("parameters", "artifacts")
RETRY_FIELDS = ("limit", "backoff")
PARAM_TYPES = ("string", "int", "float", "bool", "list")
BUILTIN_OUTPUTS = ("stdout", "exit_code", "job_id")  # every step has them; a spec cannot redefine them
OUTPUT_PLACES = ("model_dir", "share_dir")  # the step's own folders the portal (or Argo) reads outputs from
SET_BY_PIPELINE = ("name", "team")  # a step's job is named after the run and step, in the pipeline's team

MAX_NAME = 40
MAX_DESCRIPTION = 2000
MAX_PARAMS = 100
MAX_STEPS = 100
MAX_OUTPUTS = 50  # per kind, per step
MAX_FOREACH = 200  # items of a literal foreach list or a list param's default
MAX_RETRY_LIMIT = 10
MAX_BACKOFF = 3600
MAX_STEP_TIMEOUT = 7 * 86400
MAX_PARAM_TEXT = 10_000
MAX_PATH = 1024
_MAX_INT = 2**63 - 1

PARAM_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}", re.ASCII)
OUTPUT_NAME = PARAM_NAME
_CACHE_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}", re.ASCII)
_DEPENDS_ITEM = re.compile(rf"{STEP_NAME.pattern}(\.({'|'.join(STATUSES)}))?", re.ASCII)
_PATH_PART = re.compile(r"(?!\.\.?$)[^/\x00]+")

_STEP_NAME_MESSAGE = "must be lowercase letters, digits and '-', starting with a letter, at most 40 characters"
_NAME_MESSAGE = "must be lowercase letters, digits and '_', not starting with a digit, at most 63 characters"
_DEPENDS_ITEM_MESSAGE = "must be a step name, or a step name and .succeeded, .failed, .skipped or .completed"
_DEPENDS_MESSAGE = "must be a list of step names or an expression such as 'a && b.failed'"

# What a step's job is checked with in place of its templates' values (the run's come only at run time).
SAMPLE_JOB_ID = "j-aaaaaaaa"
SAMPLE_OUTPUT = "0"
SAMPLE_ARTIFACT = "/inputs/x/y"
SAMPLE_TIME = "2000-01-01T00:00:00Z"
SAMPLE_RUN_ID = "r-aaaaaaaa"
SAMPLE_TEXT = "x"
_TYPE_SAMPLES: dict[str, Any] = {"string": "x", "int": 1, "float": 1.0, "bool": True, "list": ["x"]}


def validate(data: Any) -> dict[str, Any]:
    """The normalized pipeline spec; raises SpecError naming every problem by its path (``steps.2.depends``)."""
    errs = _Errors()
    problem = document_problem(data)
    if problem is not None:
        raise SpecError({problem[0]: [problem[1]]})
    if _fields(data, "", FIELDS, errs, "a mapping of fields (name, params, steps, ...)") is None:
        raise SpecError(errs.errors)
    spec: dict[str, Any] = {"name": None, "team": None, "description": ""}
    if _absent(data.get("name")):
        errs.add("name", "required")
    else:
        spec["name"] = _string(data["name"], "name", errs, max_len=MAX_NAME, pattern=_DNS_LABEL, message=_LABEL_MESSAGE)
    if not _absent(data.get("team")):
        spec["team"] = _string(data["team"], "team", errs, max_len=63, pattern=_DNS_LABEL, message=_LABEL_MESSAGE)
    if not _absent(data.get("description")):
        spec["description"] = _string(data["description"], "description", errs, max_len=MAX_DESCRIPTION) or ""
    raw_params = data.get("params")
    spec["params"] = _params(raw_params, errs)
    param_names = set(raw_params) if isinstance(raw_params, Mapping) else set()
    spec["steps"] = _Steps(data.get("steps"), spec["params"], param_names, errs).normalized()
    if errs.errors:
        raise SpecError(errs.errors)
    return spec


def _did_you_mean(name: Any, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1) if isinstance(name, str) and len(name) <= 100 else []
    return f"; did you mean {close[0]!r}?" if close else ""


# --- params ----------------------------------------------------------------------------------


def _params(value: Any, errs: _Errors) -> dict[str, dict[str, Any]]:
    if _absent(value):
        return {}
    if not isinstance(value, Mapping):
        errs.add("params", f"must be a mapping of names to defaults (or to type and default), not {_type_name(value)}")
        return {}
    if len(value) > MAX_PARAMS:
        errs.add("params", f"at most {MAX_PARAMS} parameters, not {len(value)}")
        return {}
    params: dict[str, dict[str, Any]] = {}
    for name, body in value.items():
        path = _join("params", name)
        if not isinstance(name, str) or not PARAM_NAME.fullmatch(name):
            errs.add(path, f"is not a parameter name: it {_NAME_MESSAGE}")
            continue
        param = _param(body, path, errs)
        if param is not None:
            params[name] = param
    return params


def _infer_type(default: Any) -> str | None:
    if default is None or isinstance(default, str):
        return "string"
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, list):
        return "list"
    return None


def _param(body: Any, path: str, errs: _Errors) -> dict[str, Any] | None:
    """``{"type": ..., "default": ...}``, from that mapping or from a bare default (its type inferred)."""
    if isinstance(body, Mapping):
        _fields(body, path, PARAM_FIELDS, errs)
        default, default_path = body.get("default"), _join(path, "default")
        kind = body.get("type")
        if kind is None:
            kind = _infer_type(default)
        elif not (isinstance(kind, str) and kind in PARAM_TYPES):
            errs.add(_join(path, "type"), f"must be one of {', '.join(PARAM_TYPES)}")
            return None
    else:
        default, default_path, kind = body, path, _infer_type(body)
    if kind is None:
        errs.add(default_path, f"must be a string, number, boolean or list, not {_type_name(default)}")
        return None
    before = len(errs.errors)
    default = _default(kind, default, default_path, errs)
    return {"type": kind, "default": default} if len(errs.errors) == before else None


def _default(kind: str, value: Any, path: str, errs: _Errors) -> Any:
    """The default fitted to its type (an int for a float becomes a float); None means "given at each run"."""
    if value is None:
        return None
    if kind == "string":
        if not isinstance(value, str):
            hint = "; put it in quotes" if isinstance(value, bool | int | float) else ""
            errs.add(path, f"must be a string, not {_type_name(value)}{hint}")
        elif "\x00" in value:
            errs.add(path, "must not contain NUL characters")
        elif len(value) > MAX_PARAM_TEXT:
            errs.add(path, f"must be at most {MAX_PARAM_TEXT} characters")
        else:
            return value
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            errs.add(path, f"must be a whole number (the parameter is an int), not {_type_name(value)}")
        elif abs(value) > _MAX_INT:
            errs.add(path, "is too large")
        else:
            return value
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            errs.add(path, f"must be a number (the parameter is a float), not {_type_name(value)}")
        elif abs(value) > _MAX_INT or not math.isfinite(value):
            errs.add(path, "must be a finite number")
        else:
            return float(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            errs.add(path, f"must be true or false (the parameter is a bool), not {_type_name(value)}")
        else:
            return value
    elif not isinstance(value, list):
        errs.add(path, f"must be a list (the parameter is a list), not {_type_name(value)}")
    elif len(value) > MAX_FOREACH:
        errs.add(path, f"at most {MAX_FOREACH} items, not {len(value)}")
    else:
        return value
    return None


def param_sample(param: Mapping[str, Any]) -> Any:
    """A parameter's default, or a value of its type when each run gives it."""
    default = param.get("default")
    return _TYPE_SAMPLES[param["type"]] if default is None else default


# --- steps -----------------------------------------------------------------------------------


def _output_path(value: Any, path: str, errs: _Errors, what: str) -> str | None:
    """``model_dir/x`` or ``share_dir/x/y``: a leading '/' and a trailing one are dropped."""
    text = _string(value, path, errs, max_len=MAX_PATH)
    if text is None:
        return None
    text = text.removeprefix("/").removesuffix("/")
    parts = text.split("/")
    if parts[0] not in OUTPUT_PLACES or len(parts) < 2:
        errs.add(path, f"must be {what} under model_dir/ or share_dir/, such as model_dir/accuracy.txt")
    elif not all(_PATH_PART.fullmatch(part) for part in parts):
        errs.add(path, "must not have empty, '.' or '..' parts")
    else:
        return text
    return None


def _seconds(value: Any, path: str, errs: _Errors, *, low: int, high: int, most: str) -> int | None:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        errs.add(path, str(exc))
        return None
    if seconds < low:
        errs.add(path, "must be longer than 0s")
    elif seconds > high:
        errs.add(path, f"must be at most {most}")
    else:
        return seconds
    return None


def _walk_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, text) of every string in a job, keys aside (they are never rendered)."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, Mapping):
            stack.extend((inner, _join(where, key)) for key, inner in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((inner, _join(where, i)) for i, inner in reversed(list(enumerate(item))))


def _at(value: Any, path: str) -> Any:
    """The value at a job spec's error path, or None when the path does not lead anywhere."""
    for part in path.split(".") if path else ():
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


class _Steps:
    """The ``steps`` list through the passes; ``normalized()`` is its result."""

    def __init__(self, value: Any, params: dict[str, dict[str, Any]], param_names: set[Any], errs: _Errors):
        self.params = params
        self.param_names = param_names  # every name written, valid or not: only a missing one is "unknown"
        self.errs = errs
        self.steps: list[dict[str, Any]] = []
        self.index: dict[str, int] = {}  # step name -> its position, first of a name only
        self.written: set[Any] = set()  # every step name written, valid or not: only a missing one is "unknown"
        self.output_names: dict[int, dict[str, set[Any]]] = {}  # as written: only a missing one is "unknown"
        self.depends_nodes: dict[int, Any] = {}
        if _absent(value):
            errs.add("steps", "at least one step is required")
            return
        if not isinstance(value, list):
            errs.add("steps", f"must be a list of steps, not {_type_name(value)}")
            return
        if len(value) > MAX_STEPS:
            errs.add("steps", f"at most {MAX_STEPS} steps, not {len(value)}")
            return
        for i, body in enumerate(value):
            self._step(i, body)
        self._graph()
        for i, step in enumerate(self.steps):
            if step:
                self._references(i, step)
                self._job(i, step)

    def normalized(self) -> list[dict[str, Any]]:
        return self.steps

    # pass 1: each step's own fields

    def _step(self, i: int, body: Any) -> None:
        path = f"steps.{i}"
        errs = self.errs
        if _fields(body, path, (*STEP_FIELDS, *OPTIONAL_STEP_FIELDS), errs) is None:
            self.steps.append({})
            return
        step: dict[str, Any] = dict.fromkeys((*STEP_FIELDS, *OPTIONAL_STEP_FIELDS))
        if isinstance(body.get("name"), str):
            self.written.add(body["name"])
        if _absent(body.get("name")):
            errs.add(_join(path, "name"), "required")
        else:
            name = _string(
                body["name"], _join(path, "name"), errs, max_len=40, pattern=STEP_NAME, message=_STEP_NAME_MESSAGE
            )
            if name is not None and name in self.index:
                errs.add(_join(path, "name"), f"is the name of steps.{self.index[name]} too: step names are unique")
            elif name is not None:
                self.index[name] = i
            step["name"] = name
        step["register_model"] = None
        if not _absent(body.get("register_model")):
            step["register_model"] = self._register_fields(body, path)
            step["job"] = None
            if not _absent(body.get("job")):
                errs.add(_join(path, "job"), "a step runs a job or registers a model, not both")
        else:
            step["job"] = self._job_fields(body.get("job"), _join(path, "job"))
        step["depends"] = self._depends(i, body.get("depends"), _join(path, "depends"))
        step["requires"] = []  # derived from depends in pass 2: what the input says is not read
        step["when"] = self._when(body.get("when"), _join(path, "when"))
        step["outputs"] = self._outputs(i, body.get("outputs"), _join(path, "outputs"))
        step["retry"] = self._retry(body.get("retry"), _join(path, "retry"))
        step["timeout"] = None
        if not _absent(body.get("timeout")):
            step["timeout"] = _seconds(
                body["timeout"], _join(path, "timeout"), errs, low=1, high=MAX_STEP_TIMEOUT, most="7 days"
            )
        step["cache"] = self._cache(body.get("cache"), _join(path, "cache"))
        step["foreach"] = self._foreach(body.get("foreach"), _join(path, "foreach"))
        if step["register_model"] is None:
            del step["register_model"]  # only a registering step names one: other steps keep their shape
        self.steps.append(step)

    def _register_fields(self, body: Mapping, path: str) -> dict[str, Any] | None:
        """``register_model``: the registry's name for the model, the job whose folder it is (``from``, usually
        ``{{steps.train.job_id}}``), the folder (``path``, default model_dir), its format, metrics, a description."""
        errs, where = self.errs, _join(path, "register_model")
        value = body["register_model"]
        if _fields(value, where, REGISTER_FIELDS, errs) is None:
            return None
        given = {
            "outputs": isinstance(body.get("outputs"), Mapping) and any(body["outputs"].values()),
            "retry": isinstance(body.get("retry"), Mapping | int) and not isinstance(body.get("retry"), bool)
            and bool(body["retry"].get("limit") if isinstance(body["retry"], Mapping) else body["retry"]),
            "foreach": not _absent(body.get("foreach")),
            "timeout": not _absent(body.get("timeout")),
        }  # fmt: skip
        for field, present in given.items():
            if present:  # (a normalized spec's empty outputs and zero retry are not "given")
                errs.add(_join(path, field), "a register_model step has no " + field)
        config: dict[str, Any] = {"path": "model_dir", "metrics": {}, "description": ""}
        for field in ("name", "from", "format"):
            if _absent(value.get(field)):
                errs.add(_join(where, field), "required")
            else:
                config[field] = _string(value[field], _join(where, field), errs, max_len=500)
        for field in ("path", "description"):
            if not _absent(value.get(field)):
                config[field] = _string(value[field], _join(where, field), errs, max_len=2000)
        metrics = value.get("metrics")
        if not _absent(metrics):
            if not isinstance(metrics, Mapping):
                errs.add(_join(where, "metrics"), f"must be a mapping of names to numbers, not {_type_name(metrics)}")
            else:
                for key, item in metrics.items():
                    if isinstance(item, bool) or not isinstance(item, int | float | str):
                        errs.add(_join(where, f"metrics.{key}"), "must be a number (or a template giving one)")
                config["metrics"] = dict(metrics)
        return config

    def _job_fields(self, value: Any, path: str) -> dict[str, Any] | None:
        if _absent(value):
            self.errs.add(path, "required: the job spec this step runs (framework, roles, command, ...)")
            return None
        if not isinstance(value, Mapping):
            self.errs.add(path, f"must be a job spec mapping (framework, roles, command, ...), not {_type_name(value)}")
            return None
        for key in SET_BY_PIPELINE:
            if key in value:
                self.errs.add(_join(path, key), "is set by the pipeline")
        return copy.deepcopy(dict(value))  # kept as written: its templates are rendered at each run

    def _depends(self, i: int, value: Any, path: str) -> str:
        if _absent(value):
            return ""
        if isinstance(value, list):
            ok = True
            for n, item in enumerate(value):
                if not isinstance(item, str) or not _DEPENDS_ITEM.fullmatch(item):
                    self.errs.add(_join(path, n), _DEPENDS_ITEM_MESSAGE)
                    ok = False
            if not ok:
                return ""
            value = " && ".join(value)
        elif not isinstance(value, str):
            self.errs.add(path, f"{_DEPENDS_MESSAGE}, not {_type_name(value)}")
            return ""
        text = value.strip()
        if text:
            try:
                self.depends_nodes[i] = parse_depends(text)
            except ExpressionError as exc:
                self.errs.add(path, str(exc))
        return text

    def _when(self, value: Any, path: str) -> str:
        if _absent(value):
            return ""
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str):
            self.errs.add(path, f"must be a condition such as 'params.x > 1', not {_type_name(value)}")
            return ""
        text = value.strip()
        if text:
            try:
                parse_when(text)
            except ExpressionError as exc:
                self.errs.add(path, str(exc))
        return text

    def _outputs(self, i: int, value: Any, path: str) -> dict[str, dict[str, str]]:
        outputs: dict[str, dict[str, str]] = {kind: {} for kind in OUTPUT_KINDS}
        self.output_names[i] = {kind: set() for kind in OUTPUT_KINDS}
        if _absent(value) or _fields(value, path, OUTPUT_KINDS, self.errs) is None:
            return outputs
        for kind, what in (("parameters", "a file"), ("artifacts", "a file or folder")):
            named = value.get(kind)
            kind_path = _join(path, kind)
            if _absent(named):
                continue
            if not isinstance(named, Mapping):
                self.errs.add(kind_path, f"must be a mapping of names to paths, not {_type_name(named)}")
                continue
            if len(named) > MAX_OUTPUTS:
                self.errs.add(kind_path, f"at most {MAX_OUTPUTS}, not {len(named)}")
                continue
            self.output_names[i][kind] = set(named)
            for name, where in named.items():
                item_path = _join(kind_path, name)
                if not isinstance(name, str) or not OUTPUT_NAME.fullmatch(name):
                    self.errs.add(item_path, f"is not an output name: it {_NAME_MESSAGE}")
                elif name in BUILTIN_OUTPUTS:
                    self.errs.add(item_path, f"is a built-in output of every step ({', '.join(BUILTIN_OUTPUTS)})")
                elif (text := _output_path(where, item_path, self.errs, what)) is not None:
                    outputs[kind][name] = text
        return outputs

    def _retry(self, value: Any, path: str) -> dict[str, int]:
        retry = {"limit": 0, "backoff": 0}
        if _absent(value):
            return retry
        if isinstance(value, int) and not isinstance(value, bool):
            value = {"limit": value}
        if _fields(value, path, RETRY_FIELDS, self.errs, "a mapping of limit and backoff (or a limit)") is None:
            return retry
        if value.get("limit") is not None:
            limit = _integer(value["limit"], _join(path, "limit"), self.errs, low=0, high=MAX_RETRY_LIMIT)
            retry["limit"] = limit or 0
        if value.get("backoff") is not None:
            backoff = _seconds(
                value["backoff"], _join(path, "backoff"), self.errs, low=0, high=MAX_BACKOFF, most="1 hour (3600s)"
            )
            retry["backoff"] = backoff or 0
        return retry

    def _cache(self, value: Any, path: str) -> str:
        if value is None or value is False or value == "":
            return ""
        if value is True or value == "true":
            return "true"
        if value == "false":
            self.errs.add(path, "write false without quotes to turn caching off")
        elif not isinstance(value, str) or not _CACHE_VERSION.fullmatch(value):
            self.errs.add(
                path,
                "must be true, false or a version such as v2: letters, digits, '.', '_' and '-', at most 40 characters",
            )
        else:
            return value
        return ""

    def _foreach(self, value: Any, path: str) -> list | str | None:
        if value is None:
            return None
        if isinstance(value, list):
            if not value:
                self.errs.add(path, "must have at least one item")
            elif len(value) > MAX_FOREACH:
                self.errs.add(path, f"at most {MAX_FOREACH} items, not {len(value)}")
            else:
                for n, item in enumerate(value):
                    if references(item):
                        self.errs.add(
                            _join(path, n),
                            "templates are not filled in inside a foreach list: write the whole foreach as one "
                            'template, such as "{{params.items}}"',
                        )
                return value
            return None
        if isinstance(value, str) and TEMPLATE.fullmatch(value.strip()):
            return value.strip()
        self.errs.add(
            path,
            'must be a list or exactly one template, such as "{{params.items}}" or '
            '"{{steps.NAME.outputs.parameters.NAME}}"',
        )
        return None

    # pass 2: the graph

    def _graph(self) -> None:
        order = self.index
        for i, node in self.depends_nodes.items():
            names = depends_names(node)
            for name in names:
                if name not in order and name not in self.written:
                    self.errs.add(f"steps.{i}.depends", f"unknown step {name!r}{_did_you_mean(name, order)}")
            self.steps[i]["requires"] = sorted((name for name in names if name in order), key=order.__getitem__)
        self.ancestors: dict[int, set[int]] = {}
        for i in range(len(self.steps)):
            seen: set[int] = set()
            stack = [order[name] for name in (self.steps[i] or {}).get("requires", ())]
            while stack:
                j = stack.pop()
                if j not in seen:
                    seen.add(j)
                    stack.extend(order[name] for name in self.steps[j]["requires"])
            self.ancestors[i] = seen
        in_reported: set[int] = set()  # a step of a cycle named already: named again only in a cycle of its own
        for i in range(len(self.steps)):
            if i in self.ancestors[i] and i not in in_reported:
                cycle = self._cycle(i, order)
                in_reported.update(cycle)
                names = " → ".join(self.steps[j]["name"] for j in (*cycle, cycle[0]))
                self.errs.add(f"steps.{i}.depends", f"is part of a cycle: {names} (each depends on the next)")

    def _cycle(self, start: int, order: dict[str, int]) -> list[int]:
        """The shortest way (breadth first) from a step back to itself through ``requires``."""
        came_from: dict[int, int] = {}
        frontier = [start]
        while frontier:
            following: list[int] = []
            for j in frontier:
                for name in self.steps[j]["requires"]:
                    k = order[name]
                    if k == start:
                        path = [j]
                        while path[-1] != start:
                            path.append(came_from[path[-1]])
                        return path[::-1]  # start, the step it requires, ..., the step that requires start
                    if k not in came_from:
                        came_from[k] = j
                        following.append(k)
            frontier = following
        return [start]  # pragma: no cover - only called for a step among its own ancestors

    # pass 3: references

    def _references(self, i: int, step: dict[str, Any]) -> None:
        path = f"steps.{i}"
        found: list[tuple[str, str, str]] = []  # (path, ref, where: job, when or foreach)
        if step["job"] is not None:
            for where, text in _walk_strings(step["job"], _join(path, "job")):
                found.extend((where, match[1], "job") for match in TEMPLATE.finditer(text))
        if step.get("register_model"):
            for where, text in _walk_strings(step["register_model"], _join(path, "register_model")):
                found.extend((where, match[1], "job") for match in TEMPLATE.finditer(text))
        if step["when"]:
            try:
                found.extend((_join(path, "when"), ref, "when") for ref in when_references(parse_when(step["when"])))
            except ExpressionError:
                pass  # reported in pass 1
        foreach = step["foreach"]
        if isinstance(foreach, str):
            ref = TEMPLATE.fullmatch(foreach)[1]  # type: ignore[index]  # checked in pass 1
            found.append((_join(path, "foreach"), ref, "foreach"))
        for where, ref, part in found:
            problem = self._reference_problem(i, step, ref, part)
            if problem:
                self.errs.add(where, f"{{{{{ref}}}}}: {problem}" if part != "when" else f"{ref}: {problem}")

    def _reference_problem(self, i: int, step: dict[str, Any], ref: str, part: str) -> str | None:
        try:
            kind = classify(ref)
        except ValueError:
            return f"is not a reference: one of {REF_FORMS}"
        if kind[0] == "param":
            name = kind[1]
            if name not in self.param_names:
                return f"unknown parameter {name!r}{_did_you_mean(name, self.param_names)}"
            if part == "foreach" and name in self.params and self.params[name]["type"] != "list":
                return f"a foreach needs a list, and {name!r} is a {self.params[name]['type']} parameter"
        elif kind[0] == "step":
            name = kind[1]
            if name not in self.index:
                return None if name in self.written else f"unknown step {name!r}{_did_you_mean(name, self.index)}"
            j = self.index[name]
            if j == i:
                return "a step cannot refer to itself"
            if j not in self.ancestors[i]:
                return f"refers to step {name!r}, which this step does not depend on (add it to depends)"
            if part == "foreach" and kind[2] != "parameters":
                return "a foreach needs a list: an output parameter of an earlier step or a list parameter"
            if kind[2] in OUTPUT_KINDS:
                output, declared = kind[3], self.output_names.get(j, {}).get(kind[2], set())
                known = declared | set(BUILTIN_OUTPUTS) if kind[2] == "parameters" else declared
                if self.steps[j].get("register_model") is not None:  # a registration's outputs are its own
                    known = {*REGISTER_OUTPUTS, "job_id"} if kind[2] == "parameters" else set()
                if output not in known:
                    what = "output parameter" if kind[2] == "parameters" else "output artifact"
                    return f"step {name!r} has no {what} {output!r}{_did_you_mean(output, known)}"
        elif kind[0] == "item":
            if part == "foreach":
                return "a foreach cannot refer to its own items"
            if step["foreach"] is None:
                return "item is set only in a step with foreach"
            key, items = kind[1], step["foreach"]
            if (
                key is not None
                and isinstance(items, list)
                and not all(isinstance(x, Mapping) and key in x for x in items)
            ):
                return f"not every item of this step's foreach list is a mapping with the key {key!r}"
        elif part == "foreach":
            return "a foreach needs a list: an output parameter of an earlier step or a list parameter"
        return None

    # pass 4: the job, as the job spec sees it once the templates are filled in

    def _sample(self, i: int, step: dict[str, Any]) -> Callable[[str], Any]:
        def first_item() -> Any:
            items = step["foreach"]
            if isinstance(items, str):
                kind = classify(TEMPLATE.fullmatch(items)[1])  # type: ignore[index]
                param = self.params.get(kind[1]) if kind[0] == "param" else None
                items = param["default"] if param else None
            return items[0] if isinstance(items, list) and items else SAMPLE_TEXT

        def lookup(ref: str) -> Any:
            try:
                kind = classify(ref)
            except ValueError:
                return SAMPLE_TEXT  # reported in pass 3
            if kind[0] == "param":
                return param_sample(self.params[kind[1]]) if kind[1] in self.params else SAMPLE_TEXT
            if kind[0] == "step":
                if kind[2] == "job_id" or kind[3] == "job_id":
                    value: Any = SAMPLE_JOB_ID
                else:
                    value = SAMPLE_ARTIFACT if kind[2] == "artifacts" else SAMPLE_OUTPUT
                j = self.index.get(kind[1])
                fan_in = j is not None and self.steps[j].get("foreach") is not None
                return [value] if fan_in else value
            if kind[0] == "item":
                item = first_item()
                if kind[1] is None:
                    return item
                return item[kind[1]] if isinstance(item, Mapping) and kind[1] in item else SAMPLE_TEXT
            return SAMPLE_TIME if kind[0] == "schedule" else SAMPLE_RUN_ID

        return lookup

    def _job(self, i: int, step: dict[str, Any]) -> None:
        job = step["job"]
        if job is None:
            return
        path = f"steps.{i}.job"
        body = {key: value for key, value in job.items() if key not in SET_BY_PIPELINE}
        rendered = render_job(body, self._sample(i, step))
        try:
            validate_job({**rendered, "name": "x", "team": None})
        except SpecError as exc:
            for where, messages in exc.errors.items():
                templated = where != "spec" and references(_at(job, where))
                note = "; checked with sample values in place of its templates" if templated else ""
                for message in messages:
                    self.errs.add(path if where == "spec" else _join(path, where), message + note)


# --- text out --------------------------------------------------------------------------------


def to_text(spec: Mapping[str, Any]) -> str:
    """A normalized spec as block-style YAML, leaving out what is empty or default; it validates back to the same
    spec. Each step's job is written as it was given."""
    out: dict[str, Any] = {"name": spec["name"]}
    if spec.get("team"):
        out["team"] = spec["team"]
    if spec.get("description"):
        out["description"] = spec["description"]
    params: dict[str, Any] = {}
    for name, param in (spec.get("params") or {}).items():
        default = param.get("default")
        bare = default is not None and _infer_type(default) == param["type"]
        params[name] = default if bare else {key: value for key, value in param.items() if value is not None}
    if params:
        out["params"] = params
    steps: list[dict[str, Any]] = []
    for step in spec["steps"]:
        body: dict[str, Any] = {"name": step["name"]}
        for field in ("depends", "when", "foreach"):
            if not _absent(step.get(field)):
                body[field] = step[field]
        if step.get("register_model"):
            body["register_model"] = step["register_model"]
        else:
            body["job"] = step["job"]
        outputs = {kind: named for kind, named in (step.get("outputs") or {}).items() if named}
        if outputs:
            body["outputs"] = outputs
        retry = {key: value for key, value in (step.get("retry") or {}).items() if value}
        if retry:
            body["retry"] = retry
        if step.get("timeout"):
            body["timeout"] = step["timeout"]
        if step.get("cache"):
            body["cache"] = True if step["cache"] == "true" else step["cache"]
        steps.append(body)
    out["steps"] = steps
    return yaml.dump(out, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)
