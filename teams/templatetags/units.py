"""Quota amounts in the units people read: CPU cores and GiB."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()

GIB = 1024**3


def _plain(value: Decimal) -> str:
    # Up to two decimals, without trailing zeros: 1.50 -> "1.5", 4.00 -> "4".
    text = f"{value.quantize(Decimal('0.01')):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@register.filter
def cores(milli: int | None) -> str:
    """Millicores as cores: 1500 -> "1.5"."""
    if milli is None:
        return ""
    return _plain(Decimal(int(milli)) / 1000)


@register.filter
def gib(size: int | None) -> str:
    """Bytes as GiB: 17179869184 -> "16"."""
    if size is None:
        return ""
    return _plain(Decimal(int(size)) / GIB)
