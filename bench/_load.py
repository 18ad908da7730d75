"""Load for the HTTP benchmarks: calls one after another and from many clients at once, and their summary.

A call is an async function of no arguments that makes one request and returns its seconds.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

Call = Callable[[], Awaitable[float]]


def summary(samples: list[float], elapsed: float) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "rps": len(samples) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000,
    }


async def sequential(call: Call, count: int) -> dict[str, float]:
    started = time.perf_counter()
    samples = [await call() for _ in range(count)]
    return summary(samples, time.perf_counter() - started)


async def concurrent(call: Call, count: int, clients: int) -> dict[str, float]:
    samples: list[float] = []
    left = iter(range(count))

    async def client() -> None:
        for _ in left:
            samples.append(await call())

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return summary(samples, time.perf_counter() - started)
