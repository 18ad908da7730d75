"""Templates in a step's job: ``{{ ref }}`` found, classified and rendered. Pure: no database.

A ref names a run's parameter (``params.lr``), an earlier step's job or output
(``steps.train.job_id``, ``steps.train.outputs.parameters.accuracy``,
``steps.train.outputs.artifacts.checkpoint``), a foreach step's item (``item``,
``item.path``), the schedule's tick (``schedule.time``) or the run (``run.id``).

Only text that looks like a ref is a template (``{{ params.lr }}``); other
double braces (``{{ .Values.x }}``, ``{{a b}}``) stay literal text, so shell
and Go templates in a command survive. Keys of mappings are never rendered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}\}", re.ASCII)

_NAME = r"[A-Za-z0-9_][A-Za-z0-9_\-]*"  # loose on purpose: validation names an unknown step or param, not "no ref"
_REFS: tuple[tuple[re.Pattern, Callable[[re.Match], tuple]], ...] = (
    (re.compile(rf"params\.({_NAME})", re.ASCII), lambda m: ("param", m[1])),
    (re.compile(rf"steps\.({_NAME})\.job_id", re.ASCII), lambda m: ("step", m[1], "job_id")),
    (
        re.compile(rf"steps\.({_NAME})\.outputs\.(parameters|artifacts)\.({_NAME})", re.ASCII),
        lambda m: ("step", m[1], m[2], m[3]),
    ),
    (re.compile(rf"item(?:\.({_NAME}))?", re.ASCII), lambda m: ("item", m[1])),
    (re.compile(r"schedule\.time"), lambda m: ("schedule", "time")),
    (re.compile(r"run\.id"), lambda m: ("run", "id")),
)
REF_FORMS = (
    "params.NAME, steps.NAME.job_id, steps.NAME.outputs.parameters.NAME, steps.NAME.outputs.artifacts.NAME, "
    "item, item.KEY, schedule.time or run.id"
)


class RenderError(Exception):
    """A template whose ref has no value (the lookup raised KeyError)."""

    def __init__(self, ref: str):
        self.ref = ref
        super().__init__(f"no value for {{{{{ref}}}}}")


def classify(ref: str) -> tuple:
    """What a ref names: ("param", name), ("step", step, "job_id"), ("step", step, "parameters"|"artifacts",
    name), ("item", key or None), ("schedule", "time") or ("run", "id"); ValueError for anything else."""
    if isinstance(ref, str):
        for pattern, kind in _REFS:
            match = pattern.fullmatch(ref)
            if match:
                return kind(match)
    raise ValueError(f"{ref!r} is not a reference: one of {REF_FORMS}")


def references(value: Any) -> set[str]:
    """Every ref of every template in a string, or in the strings nested in lists and mapping values."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.update(match[1] for match in TEMPLATE.finditer(item))
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def as_text(value: Any) -> str:
    """A value as it reads inside a longer string: lists and mappings as compact JSON, booleans as JSON's."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | Mapping):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def render(value: Any, lookup: Callable[[str], Any]) -> Any:
    """The value with every template replaced by ``lookup(ref)``. A string that is exactly one template becomes
    the looked-up value itself (an int stays an int); a template inside longer text is replaced by its text.
    RenderError when lookup raises KeyError."""

    def one(ref: str) -> Any:
        try:
            return lookup(ref)
        except KeyError:
            raise RenderError(ref)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            if "{{" not in item:
                return item
            whole = TEMPLATE.fullmatch(item)
            if whole:
                return one(whole[1])
            return TEMPLATE.sub(lambda match: as_text(one(match[1])), item)
        if isinstance(item, Mapping):
            return {key: walk(inner) for key, inner in item.items()}
        if isinstance(item, list | tuple):
            return [walk(inner) for inner in item]
        return item

    return walk(value)


# Where in a job spec a whole template keeps a value that is not text: the job spec's numbers and booleans, and
# its lists and mappings. Anywhere else (env values, command items, image, pre_job, ...) the job spec wants text,
# so a value there becomes its text: ``VERBOSE: "{{params.verbose}}"`` is "true", not a boolean the job spec
# refuses. In step with jobs.spec's fields.
_TYPED_IN_JOB = frozenset(
    {
        ("roles", "*", "replicas"), ("roles", "*", "gpu"), ("roles", "*", "cpu"), ("roles", "*", "memory"),
        ("max_retries",), ("timeout",), ("ports", "*"), ("scheduling", "gang"), ("scheduling", "oversell"),
    }
)  # fmt: skip
_STRUCTURE_IN_JOB = frozenset(
    {
        ("command",), ("env",), ("roles",), ("roles", "*"), ("roles", "*", "command"), ("roles", "*", "env"),
        ("scheduling",), ("scheduling", "node_selector"), ("scheduling", "tolerations"),
        ("scheduling", "tolerations", "*"), ("volumes",), ("ports",), ("inputs",),
    }
)  # fmt: skip


def _position(path: tuple[Any, ...], table: frozenset[tuple[str, ...]]) -> bool:
    return any(
        len(path) == len(pattern) and all(p == "*" or p == part for p, part in zip(pattern, path, strict=True))
        for pattern in table
    )


def render_job(job: Mapping[str, Any], lookup: Callable[[str], Any]) -> dict[str, Any]:
    """A step's job with its templates filled in, as ``render`` does, except that a whole template where the job
    spec wants text gives text (numbers, booleans, lists and mappings as ``as_text`` writes them). The engine
    renders with it, and validation checks each step's job with it, so both see the same job."""

    def walk(item: Any, path: tuple[Any, ...]) -> Any:
        if isinstance(item, str):
            whole = TEMPLATE.fullmatch(item)
            if not whole:
                return render(item, lookup)
            value = render(item, lookup)
            if isinstance(value, str):
                return value
            if value is None:
                return "" if not (_position(path, _TYPED_IN_JOB) or _position(path, _STRUCTURE_IN_JOB)) else None
            if isinstance(value, bool | int | float) and _position(path, _TYPED_IN_JOB):
                return value
            if isinstance(value, list | tuple | Mapping) and _position(path, _STRUCTURE_IN_JOB):
                return value
            return as_text(value)
        if isinstance(item, Mapping):
            return {key: walk(inner, (*path, key)) for key, inner in item.items()}
        if isinstance(item, list | tuple):
            return [walk(inner, (*path, i)) for i, inner in enumerate(item)]
        return item

    return walk(job, ())
