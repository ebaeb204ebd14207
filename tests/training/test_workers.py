from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from autolung.training.data.workers import BatchStream, DataWorkerError


class CountingBuilder:
    def build(self, index: int) -> np.ndarray:
        return np.random.default_rng(index).normal(size=3)


class FailingBuilder:
    def __init__(self, fail_at: int) -> None:
        self.fail_at = fail_at

    def build(self, index: int) -> int:
        if index == self.fail_at:
            explode_in_worker(index)
        return index


def explode_in_worker(index: int) -> None:
    raise ValueError(f"corrupt patch in batch {index}")


class DyingBuilder:
    def build(self, index: int) -> int:
        if index >= 2:
            os._exit(3)  # simulates the OOM killer: no Python exception, no report
        return index


@pytest.fixture
def alarm():
    # Fail instead of hanging forever if the stream ever blocks.
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("stream hung")))
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_order_is_independent_of_worker_count(workers, alarm):
    with BatchStream(CountingBuilder(), start=5, num_workers=workers) as stream:
        got = [next(stream) for _ in range(7)]
    expected = [CountingBuilder().build(i) for i in range(5, 12)]
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))


def test_worker_exception_surfaces_with_its_own_traceback(alarm):
    stream = BatchStream(FailingBuilder(fail_at=3), start=0, num_workers=2)
    start = time.monotonic()
    with pytest.raises(DataWorkerError) as info:
        for _ in range(10):
            next(stream)
    message = str(info.value)
    assert "Traceback" in message and "explode_in_worker" in message
    assert "ValueError: corrupt patch in batch 3" in message
    assert time.monotonic() - start < 30
    assert stream._processes == []  # workers reaped


def test_silently_dying_worker_is_detected(alarm):
    stream = BatchStream(DyingBuilder(), start=0, num_workers=1)
    with pytest.raises(DataWorkerError, match="died without a report"):
        for _ in range(10):
            next(stream)


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent("""
        import time
        from autolung.training.data.workers import BatchStream
        import numpy as np

        class Builder:
            def build(self, index):
                return np.zeros(10)

        stream = BatchStream(Builder(), num_workers=1)
        next(stream)
        print(stream._processes[0].pid, flush=True)
        time.sleep(60)
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker_pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            return
        # A zombie reaped by init also counts as gone; check its state.
        try:
            with open(f"/proc/{worker_pid}/stat") as handle:
                if handle.read().split()[2] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.2)
    os.kill(worker_pid, signal.SIGKILL)
    pytest.fail("the orphaned worker kept running after its parent was killed")
