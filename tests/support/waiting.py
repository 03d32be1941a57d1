"""Waiting for a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10,
    interval: float = 0.05,
    message: str | Callable[[], str] = "",
) -> T:
    """Call `predicate` until it returns something truthy and return that; AssertionError after
    `timeout` seconds, saying `message` (or what it returns, when a callable: read at the timeout,
    such as a log) or else the predicate's last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(text or f"condition not met in {timeout}s (last value: {value!r})")
        time.sleep(interval)
