"""The sliding-window rate limiter (pure logic, with a fake clock)."""

from __future__ import annotations

import pytest

from kernelpad.errors import RateLimited
from kernelpad.sessions.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_allows_the_limit_then_refuses_until_the_window_moves() -> None:
    clock = Clock()
    limiter = RateLimiter(2, clock)
    limiter.hit("s")
    clock.now += 10
    limiter.hit("s")
    with pytest.raises(RateLimited) as refused:
        limiter.hit("s")
    assert refused.value.retry_after == 50
    assert refused.value.message.startswith("s may run code 2 times")
    assert refused.value.public.startswith("You may run code 2 times a minute")
    clock.now += 50
    limiter.hit("s")  # the first hit has left the window
    with pytest.raises(RateLimited) as again:
        limiter.hit("s")
    assert again.value.retry_after == 10


def test_keys_are_independent_and_zero_means_unlimited() -> None:
    limiter = RateLimiter(1, Clock())
    limiter.hit("a")
    limiter.hit("b")
    with pytest.raises(RateLimited):
        limiter.hit("a")
    limiter.forget("a")
    limiter.hit("a")
    unlimited = RateLimiter(0, Clock())
    for _ in range(1000):
        unlimited.hit("a")
