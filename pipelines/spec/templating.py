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
