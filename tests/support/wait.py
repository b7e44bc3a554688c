"""Waiting in tests: poll a condition until it holds, with a generous timeout, never a bare sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 30.0, what: str = "condition",
               interval: float = 0.1) -> T:
    """Call ``condition`` until it returns something truthy, and return that; :class:`TimeoutError` naming
    ``what`` and the last value seen when ``timeout`` seconds pass first. A condition that raises is
    not retried: the error is the test's."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not reached in {timeout:g} s (last: {value!r})")
        time.sleep(interval)


def settled_count(count: Callable[[], int], expected: int, timeout: float = 90.0, settle_s: float = 0.5,
                  interval: float = 0.25) -> int:
    """Wait until ``count()`` reaches ``expected``, then once more after ``settle_s``: the value returned
    shows a late duplicate, if any (exactly-once checks). On timeout, the last count (for the assert)."""
    last = 0

    def reached() -> bool:
        nonlocal last
        last = count()
        return last >= expected

    try:
        wait_until(reached, timeout, f"{expected} stored", interval)
    except TimeoutError:
        return last
    time.sleep(settle_s)  # not a wait for a condition: the time a duplicate would need to show up
    return count()


async def async_wait_until(condition: Callable[[], T], within_s: float = 30.0, what: str = "condition",
                           interval: float = 0.05) -> T:
    """:func:`wait_until` for a test running on the event loop: other tasks run between two looks."""
    deadline = time.monotonic() + within_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not reached in {within_s:g} s (last: {value!r})")
        await asyncio.sleep(interval)
