"""CPU and memory amounts in the Kubernetes notation, for the cluster's capacity settings and our messages.

Kept here rather than shared with the jobs app, which a backend does not import.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[mkMGTPE])?", re.ASCII)


def _split(value: Any, what: str) -> tuple[Decimal, str]:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} must be a number or a quantity such as {'500m' if what == 'cpu' else '8Gi'}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{what} must not be negative")
        return Decimal(repr(value)), ""
    match = _QUANTITY.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{what} {value!r} is not a quantity such as {'500m or 2' if what == 'cpu' else '8Gi'}")
    try:
        return Decimal(match[1]), match[2] or ""
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"{what} {value!r} is not a quantity")


def parse_cpu(value: Any) -> int:
    """Millicores from 2, 0.5, "500m" or "1.5"."""
    number, suffix = _split(value, "cpu")
    if suffix not in ("", "m"):
        raise ValueError(f"cpu takes cores (2, 0.5) or millicores (500m), not {suffix!r}")
    return int(number if suffix == "m" else number * 1000)


def parse_memory(value: Any) -> int:
    """Bytes from "8Gi", "512Mi", "1G" or a number of bytes."""
    number, suffix = _split(value, "memory")
    if suffix == "m":
        raise ValueError(f"memory {value!r} uses 'm' (milli); did you mean 'Mi'?")
    return int(number * (_BINARY.get(suffix) or _DECIMAL.get(suffix) or 1))


def format_cpu(milli: int) -> str:
    """2000 -> "2", 1500 -> "1.5", 250 -> "250m"."""
    if milli % 1000 == 0:
        return str(milli // 1000)
    if milli % 100 == 0:
        return f"{milli / 1000:.1f}"
    return f"{milli}m"


def format_memory(size: int) -> str:
    """4294967296 -> "4Gi", 1610612736 -> "1.5Gi", 1000 -> "1000"."""
    for unit, factor in reversed(_BINARY.items()):
        if size >= factor:
            value = f"{size / factor:.2f}".rstrip("0").rstrip(".")
            return f"{value}{unit}"
    return str(size)
