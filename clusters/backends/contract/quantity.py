"""Kubernetes-style quantities and durations: the one reader of them, and their formatting for people.

One grammar, Kubernetes' own: a number, then either a decimal exponent (``"1e9"``) or a suffix (``n u m k M
G T P E``, or ``Ki Mi Gi Ti Pi Ei``). It is read exactly (``Fraction``, never float) so that ``"1.5Gi"`` is
1610612736 bytes and not one byte off. Its readers:

- ``parse_cpu`` and ``parse_memory``: what people write (a job's spec, a local cluster's settings), to
  millicores and bytes, the units the database and the backends use; what they refuse gets a message that
  says why (the spec's validation shows it with the field's path);
- ``parse_quantity``: what a cluster reports (a node's allocatable, a pod's requests), in the resource's
  own unit (cores, bytes, devices).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

# The database stores totals in 64-bit signed columns; nothing larger can be recorded.
MAX_INT64 = 2**63 - 1

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_FRACTIONAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 10**3)}
_SCALE: dict[str, Fraction | int] = {"": 1, **_FRACTIONAL, **_DECIMAL, **_BINARY}

# A number, then either a decimal exponent ("1e9") or a suffix. "1E" is exa, "1E3" is 1000:
# the exponent needs digits, which is how Kubernetes tells them apart.
_QUANTITY = re.compile(
    r"(?P<number>\d+(?:\.\d*)?|\.\d+)(?:(?P<exponent>[eE][+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?",
    re.ASCII,
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])", re.ASCII)
_DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_EXAMPLES = {"cpu": "500m or 2", "memory": "512Mi or 4Gi"}

# Longer inputs are never a real quantity; refusing them keeps parsing cheap for any input.
_MAX_TEXT = 64


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any, what: str) -> tuple[Fraction, str]:
    """The number and suffix of a quantity given as an int, a float or a string."""
    if isinstance(value, bool):  # bool is an int in Python; True is never meant as 1 core
        raise ValueError(f"{what} must be a quantity, not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{what} must not be negative")
        if value > MAX_INT64:
            raise ValueError(f"{what} is too large")
        return Fraction(value), ""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{what} must be a finite number")
        value = repr(value)  # "0.5", "1e+20": the shortest text that reads back as this float
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a quantity such as {_EXAMPLES.get(what, '2, 500m or 4Gi')}")
    if len(value) > _MAX_TEXT:
        raise ValueError(f"{what} is too long to be a quantity")
    if value.startswith("-"):
        raise ValueError(f"{what} must not be negative")
    match = _QUANTITY.fullmatch(value)
    if match is None:
        raise ValueError(f"{what} {_short(value)} is not a quantity")
    try:
        number = Decimal(match["number"] + (match["exponent"] or ""))
    except InvalidOperation:  # pragma: no cover - the pattern only admits valid decimals
        raise ValueError(f"{what} {_short(value)} is not a quantity")
    # Bound the exponent before exact arithmetic: Fraction("1e999999999") would build a huge integer.
    if number and not -30 <= number.adjusted() <= 30:
        raise ValueError(f"{what} {_short(value)} is out of range")
    return Fraction(number), match["suffix"] or ""


def parse_quantity(value: Any, what: str = "quantity") -> Fraction:
    """The amount a quantity stands for in its resource's unit, exactly: ``"3920m"`` -> 3.92 (cores),
    ``"16318284Ki"`` -> bytes, ``"100n"`` -> a ten-millionth, ``"4"`` -> 4 (GPUs)."""
    number, suffix = _number(value, what)
    return number * _SCALE[suffix]


def parse_cpu(value: Any, *, round_down: bool = False) -> int:
    """Millicores from ``2``, ``0.5``, ``"500m"``, ``"1.5"`` or ``"2e0"``.

    Finer than a millicore is refused, or with ``round_down`` (a cluster's capacity) rounded down.
    """
    number, suffix = _number(value, "cpu")
    if suffix not in ("", "m"):
        raise ValueError(f"cpu takes cores (2, 0.5) or millicores (500m), not {suffix!r}")
    milli = number if suffix == "m" else number * 1000
    if milli.denominator != 1:
        if not round_down:
            raise ValueError(f"cpu {_short(value)} is finer than one millicore (1m)")
        milli = Fraction(math.floor(milli))
    if milli > MAX_INT64:
        raise ValueError("cpu is too large")
    return int(milli)


def parse_memory(value: Any, *, round_down: bool = False) -> int:
    """Bytes from ``"512Mi"``, ``"4Gi"``, ``"1G"``, ``"1e9"``, ``1000000`` or ``"1.5Gi"``.

    A fraction of a byte is refused, or with ``round_down`` (a cluster's capacity) rounded down.
    """
    number, suffix = _number(value, "memory")
    if suffix == "m":
        # Kubernetes reads "512m" as half a byte per thousand; nobody means that.
        raise ValueError(f"memory {_short(value)} uses 'm' (milli); did you mean 'Mi' (mebibytes)?")
    if suffix in _FRACTIONAL:
        raise ValueError(f"memory takes bytes (1000000), Ki, Mi, Gi... or k, M, G..., not {suffix!r}")
    amount = number * _SCALE[suffix]
    if amount.denominator != 1:
        if not round_down:
            raise ValueError(f"memory {_short(value)} is not a whole number of bytes")
        amount = Fraction(math.floor(amount))
    if amount > MAX_INT64:
        raise ValueError("memory is too large")
    return int(amount)


def whole_number(text: str, max_digits: int = 18) -> int | None:
    """The int a request's text spells in ASCII digits (at most max_digits of them: fits a 64-bit column), else None.

    ``str.isdigit`` alone lets "²" and other Unicode digits through to ``int()``, which refuses them.
    """
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= max_digits:
        return int(text)
    return None


def parse_duration(value: Any) -> int:
    """Seconds from ``"90s"``, ``"30m"``, ``"2h"``, ``"1d"``, ``"1h30m"``; a bare integer counts seconds."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("a duration must be text such as 90s, 30m, 2h, 1d or 1h30m")
    if isinstance(value, int):
        seconds: Fraction = Fraction(value)
    elif value.isascii() and value.isdigit() and len(value) <= 20:
        seconds = Fraction(int(value))
    else:
        if len(value) > _MAX_TEXT or not value:
            raise ValueError(f"{_short(value)} is not a duration such as 90s, 30m, 2h, 1d or 1h30m")
        parts = _DURATION_PART.findall(value)
        if "".join(number + unit for number, unit in parts) != value:
            raise ValueError(f"{_short(value)} is not a duration such as 90s, 30m, 2h, 1d or 1h30m")
        seconds = sum((Fraction(Decimal(number)) * _DURATION_UNITS[unit] for number, unit in parts), Fraction(0))
    if seconds < 0:
        raise ValueError("a duration must not be negative")
    if seconds.denominator != 1:
        raise ValueError(f"{_short(value)} is not a whole number of seconds")
    if seconds > MAX_INT64:
        raise ValueError("the duration is too long")
    return int(seconds)


def format_cpu(milli: int) -> str:
    """``2000`` -> ``"2"``, ``1500`` -> ``"1.5"``, ``250`` -> ``"250m"``; parse_cpu reads it back exactly."""
    if isinstance(milli, bool) or not isinstance(milli, int) or milli < 0:
        raise ValueError(f"millicores must be a non-negative integer, not {_short(milli)}")
    if milli % 100 == 0:
        whole, tenths = divmod(milli // 100, 10)
        return f"{whole}.{tenths}" if tenths else str(whole)
    return f"{milli}m"


def format_memory(size: int) -> str:
    """``4294967296`` -> ``"4Gi"``, ``1610612736`` -> ``"1.5Gi"``, ``10**9`` -> ``"1G"``.

    Exact when two decimals of a binary unit (or a whole decimal unit) say it;
    otherwise rounded to two decimals, for display only.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"bytes must be a non-negative integer, not {_short(size)}")
    if size < 1024:
        return str(size)
    unit, factor = next((u, f) for u, f in reversed(_BINARY.items()) if size >= f)
    if (size * 100) % factor == 0:
        return _decimals(Fraction(size, factor)) + unit
    for dec_unit, dec_factor in reversed(_DECIMAL.items()):
        if size >= dec_factor and size % dec_factor == 0:
            return f"{size // dec_factor}{dec_unit}"
    rounded = round(Fraction(size, factor), 2)
    if rounded >= 1024 and unit != "Ei":  # 1023.999Mi rounds up into the next unit
        unit, rounded = {"Ki": "Mi", "Mi": "Gi", "Gi": "Ti", "Ti": "Pi", "Pi": "Ei"}[unit], Fraction(1)
    return _decimals(Fraction(rounded)) + unit


def _decimals(value: Fraction) -> str:
    """Up to two decimals, trailing zeros dropped."""
    hundredths = round(value * 100)
    whole, frac = divmod(hundredths, 100)
    if not frac:
        return str(whole)
    return f"{whole}.{frac:02d}".rstrip("0")
