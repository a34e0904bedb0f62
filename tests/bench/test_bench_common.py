"""The benchmark helpers that turn measurements into figures: FLOP counts and memory growth."""

from __future__ import annotations

import pytest

from bench.bench_memory import MemoryTrace, describe_daemon
from bench.common import counted_flops, profiled_flops

MIB = 2**20


def test_flop_counts_agree():
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    x = keras.layers.SeparableConv2D(32, 3, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    convolution = 2 * 32 * 32 * 3 * 3 * 3 * 16
    separable = 2 * 32 * 32 * (3 * 3 * 16 + 16 * 32)
    dense = 2 * 32 * 10

    counted = counted_flops(model)
    profiled = profiled_flops(model, 32)

    assert counted == convolution + separable + dense
    # The profiler also counts bias additions and pooling, a few percent here.
    assert counted <= profiled <= counted * 1.05


def test_memory_growth_after_warm_up():
    trace = MemoryTrace()
    for done, rss_mib in [(0, 500), (5, 600), (10, 610), (50, 620), (100, 640)]:
        trace.add(float(done), {"VmRSS": rss_mib * MIB, "VmHWM": 650 * MIB}, done)

    summary = describe_daemon(100, trace, warm_up=0.1)

    assert "peak RSS 650 MiB" in summary
    assert "610 MiB after warm-up" in summary
    assert "640 MiB at the end" in summary
    assert f"growth {640 / 610 - 1:+.1%}" in summary


def test_memory_growth_too_few_samples():
    trace = MemoryTrace()
    trace.add(0.0, {"VmRSS": 100 * MIB}, 0)

    assert "too few samples" in describe_daemon(10, trace, warm_up=0.1)


@pytest.mark.parametrize("status", [{}, {"VmRSS": 0}])
def test_memory_trace_exited_process(status):
    trace = MemoryTrace()
    trace.add(1.0, status, 3)

    assert trace.peak_bytes == 0
    assert trace.samples == [(1.0, 0, 3)]
