"""Batcher: full batches, batches due by waiting time, flushes, with a fake clock."""

from __future__ import annotations

import pytest

from daemon.batcher import Batcher


class FakeClock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_batcher_releases_full_batch_at_once():
    clock = FakeClock()
    batcher = Batcher(3, 1.0, clock=clock)
    for item in "abcde":
        batcher.add(item)

    assert batcher.deadline() == clock.now
    assert batcher.take() == ["a", "b", "c"]
    assert batcher.take() == []
    assert len(batcher) == 2


def test_batcher_waits_for_max_wait():
    clock = FakeClock()
    batcher = Batcher(10, 0.5, clock=clock)
    batcher.add("a")
    clock.now += 0.3
    batcher.add("b")

    assert batcher.take() == []
    assert batcher.deadline() == pytest.approx(100.5)
    clock.now = 100.5
    assert batcher.take() == ["a", "b"]
    assert batcher.deadline() is None


def test_batcher_flush_and_drain():
    clock = FakeClock()
    batcher = Batcher(10, 5.0, clock=clock)
    batcher.add(1)
    batcher.add(2)

    assert batcher.take(flush=True) == [1, 2]
    batcher.add(3)
    assert batcher.drain() == [3]
    assert len(batcher) == 0


def test_batcher_rejects_zero_size():
    with pytest.raises(ValueError, match="max_size"):
        Batcher(0, 1.0)
