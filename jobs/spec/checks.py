"""The checks every part of a spec is made of: each reports its problems by path and returns the value or None."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from jobs.spec.vocabulary import _MAX_SUGGESTED_KEY, _MAX_UNKNOWN, SHELL, _join, _type_name

_MAX_ERRORS = 200  # paths reported at most: a spec of 100,000 wrong keys gets a bounded answer


class _Errors:
    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        if path not in self.errors and len(self.errors) >= _MAX_ERRORS:
            path, message = "spec", "more problems not shown"
        messages = self.errors.setdefault(path, [])
        if message not in messages:
            messages.append(message)


def _fields(value: Any, path: str, known: tuple[str, ...], errs: _Errors, what: str = "a mapping") -> Mapping | None:
    """The mapping, with every unknown key reported; None (reported) when it is not a mapping."""
    if not isinstance(value, Mapping):
        errs.add(path or "spec", f"must be {what}, not {_type_name(value)}")
        return None
    unknown = [key for key in value if not (isinstance(key, str) and key in known)]
    for key in unknown[:_MAX_UNKNOWN]:
        suggest = isinstance(key, str) and len(key) <= _MAX_SUGGESTED_KEY
        close = difflib.get_close_matches(key, known, n=1) if suggest else []
        errs.add(_join(path, key), "unknown field" + (f"; did you mean {close[0]!r}?" if close else ""))
    if len(unknown) > _MAX_UNKNOWN:
        errs.add(path or "spec", f"{len(unknown) - _MAX_UNKNOWN} more unknown fields")
    return value


def _string(
    value: Any, path: str, errs: _Errors, *, max_len: int, pattern: re.Pattern | None = None, message: str = ""
) -> str | None:
    if not isinstance(value, str):
        hint = "; put it in quotes" if isinstance(value, bool | int | float) else ""
        errs.add(path, f"must be a string, not {_type_name(value)}{hint}")
    elif "\x00" in value:
        errs.add(path, "must not contain NUL characters")
    elif not value:
        errs.add(path, "must not be empty")
    elif len(value) > max_len:
        errs.add(path, f"must be at most {max_len} characters")
    elif pattern is not None and not pattern.fullmatch(value):
        errs.add(path, message)
    else:
        return value
    return None


def _integer(value: Any, path: str, errs: _Errors, *, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        errs.add(path, f"must be a whole number, not {_type_name(value)}")
    elif value < low:
        errs.add(path, f"must be at least {low}")
    elif value > high:
        errs.add(path, f"must be at most {high}")
    else:
        return value
    return None


def _choice(value: Any, path: str, errs: _Errors, choices: tuple[str, ...]) -> str | None:
    if isinstance(value, str) and value in choices:
        return value
    errs.add(path, f"must be one of {', '.join(choices)}")
    return None


def _command(value: Any, path: str, errs: _Errors) -> list[str]:
    if isinstance(value, str):
        if "\x00" in value:
            errs.add(path, "must not contain NUL characters")
        elif not value.strip():
            errs.add(path, "must not be blank")
        else:
            return [*SHELL, value]
        return []
    if not isinstance(value, list):
        errs.add(path, f"must be a string (run by /bin/sh) or a list of strings, not {_type_name(value)}")
        return []
    return list(value) if _argv_ok(value, path, errs) else []


def _argv_ok(value: list, path: str, errs: _Errors) -> bool:
    """Whether a command given as a list is a program's arguments: strings without NUL, the first not empty."""
    ok = True
    for i, arg in enumerate(value):
        if not isinstance(arg, str):
            errs.add(_join(path, i), f"must be a string, not {_type_name(arg)}")
            ok = False
        elif "\x00" in arg:
            errs.add(_join(path, i), "must not contain NUL characters")
            ok = False
    if ok and not value[0]:
        errs.add(_join(path, 0), "must not be empty: it is the program to run")
        ok = False
    return ok
