"""Core counts follow the process's affinity mask, not the machine's core count."""
from __future__ import annotations

import os

import pytest
import torch

from autolung.training import hardware

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity API on this platform")


@pytest.fixture
def one_core():
    """Pin this process to its first allowed core for the test, then restore the mask and threads."""
    mask, threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, {min(mask)})
    yield
    os.sched_setaffinity(0, mask)
    torch.set_num_threads(threads)


def test_usable_cpu_count_is_the_affinity_mask(one_core) -> None:
    assert hardware.usable_cpu_count() == 1


def test_pinned_process_gets_one_thread_and_in_process_augmentation(one_core) -> None:
    cpu = torch.device("cpu")
    assert hardware.configure_threads(cpu, None) == 1
    assert hardware.default_num_workers(cpu) == 0


def test_explicit_counts_still_win(one_core) -> None:
    cpu = torch.device("cpu")
    assert hardware.default_num_workers(cpu, cpu_count=8) == 4
