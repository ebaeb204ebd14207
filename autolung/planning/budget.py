"""Sizing a plan to the device and the training budget (the ``auto`` planner's decisions).

On a GPU the memory-budget rules of the default planner are the right ones. On a CPU the time a
training step takes decides how many steps a budget buys: the GPU-sized plan trains Task04 at
3.5 s per step on 2 cores (325 steps in 20 minutes, Dice 0.377), the half-width ``cpu`` preset at
0.4 s (1400 steps in 10 minutes, Dice 0.87). Under about a thousand steps a U-Net has not yet
converged on these sets, above it capacity pays (MSD tumour patches: the full-width plan 0.633
against the half-width one's 0.617 in the same 5 minutes). So the choice is: the widest candidate
whose measured-and-scaled step time still buys ``min_iterations`` steps in the budget.

The step time is measured, not assumed: :func:`probe_interleaved` times a few real training
steps (forward, deep-supervised loss, backward, SGD) of the cheapest candidate on the device, and
the other candidates' times are scaled from it by their multiply-accumulate count
(:func:`estimate_macs`). Wider networks use the cores at least as well, so the scaled times are
upper bounds.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from autolung.planning.plans import ArchitecturePlan

log = logging.getLogger(__name__)

DEFAULT_CPU_BUDGET_S = 600.0
MIN_ITERATIONS = 1000
# 50 validation iterations (forward only, about a third of a training step) per 250 training ones.
TRAINING_SHARE = 250.0 / (250.0 + 50.0 / 3.0)
# Start-up (workers, first batches) and the end-of-run checkpoint, taken from the budget.
FIXED_OVERHEAD_S = 15.0

StepProbe = Callable[[ArchitecturePlan, Sequence[int], int, int, int], float]


@dataclass
class Candidate:
    """One sized plan the auto planner considers: name, network, patch, batch and its step cost."""

    name: str
    architecture: ArchitecturePlan
    patch_size: list[int]
    batch_size: int
    macs: float = 0.0
    step_s: float = math.nan
    iterations: float = math.nan


def _conv_macs(in_ch: int, out_ch: int, kernel: Sequence[int], size: Sequence[int]) -> float:
    return float(in_ch) * out_ch * math.prod(kernel) * math.prod(size)


def estimate_macs(arch: ArchitecturePlan, patch: Sequence[int], in_channels: int, out_channels: int) -> float:
    """Multiply-accumulates of one forward pass of one sample (convolutions only).

    Args:
        arch: the planned U-Net.
        patch: spatial patch size.
        in_channels: image channels.
        out_channels: segmentation channels.

    Returns:
        The count (a float; the backward pass costs about twice as much again).
    """
    size, previous, total, sizes = list(patch), in_channels, 0.0, []
    residual = arch.network == "resenc_unet"
    for stage, width in enumerate(arch.features_per_stage):
        size = [math.ceil(n / s) for n, s in zip(size, arch.strides[stage])]
        sizes.append(size)
        kernel = arch.kernel_sizes[stage]
        convs = arch.blocks_per_stage[stage] * (2 if residual else 1)
        total += _conv_macs(previous, width, kernel, size) + (convs - 1) * _conv_macs(width, width, kernel, size)
        previous = width
    for stage in range(arch.num_stages - 2, -1, -1):
        width, below = arch.features_per_stage[stage], arch.features_per_stage[stage + 1]
        size, kernel = sizes[stage], arch.kernel_sizes[stage]
        total += _conv_macs(below, width, arch.strides[stage + 1], size)  # transposed conv
        convs = arch.decoder_convs_per_stage[stage]
        total += _conv_macs(2 * width, width, kernel, size) + (convs - 1) * _conv_macs(width, width, kernel, size)
        total += _conv_macs(width, out_channels, [1] * arch.dim, size)  # (deep-supervision) head
    return total


def probe_interleaved(requests: Sequence[tuple[ArchitecturePlan, Sequence[int], int]], in_channels: int,
                      out_channels: int, device: str = "cpu", rounds: int = 5,
                      max_seconds: float = 20.0) -> list[float]:
    """Measured seconds of one training step of each request, their steps taken in turn.

    The planner compares configurations (2d against 3d_fullres) by the steps each buys, so their
    probes must see the same machine: measured one after the other, a load that came and went
    (another tool preprocessing beside the planner) made 3d_fullres look as cheap as 2d on NSCLC
    and chose it. In turn, round by round, a passing load slows one round of every request. The
    fastest round of each is kept, not the mean: on a machine shared with other jobs single steps
    take several times longer now and then (1-3 s instead of 0.1 s for a small 2D U-Net at load 5
    on 2 cores), and the plan should not shrink for a moment's load.

    Args:
        requests: ``(architecture, patch, batch)`` per configuration.
        in_channels: image channels.
        out_channels: segmentation channels.
        device: torch device name.
        rounds: timed rounds (fewer, at least one, once ``max_seconds`` have passed).
        max_seconds: wall-clock cap of the timed rounds.

    Returns:
        Seconds per step, in the order of ``requests``.
    """
    import torch

    from autolung.network import build_network

    steps = []
    for arch, patch, batch in requests:
        network = build_network(arch, in_channels, out_channels, deep_supervision=True).to(device)
        optimizer = torch.optim.SGD(network.parameters(), lr=1e-3, momentum=0.9)
        steps.append((network, optimizer, torch.randn(batch, in_channels, *patch, device=device)))
    for step in steps:  # the first step allocates and picks kernels
        _training_step(*step)
    times: list[list[float]] = [[] for _ in steps]
    began = time.perf_counter()
    for _ in range(rounds):
        if times[0] and time.perf_counter() - began > max_seconds:
            break
        for index, step in enumerate(steps):
            start = time.perf_counter()
            _training_step(*step)
            times[index].append(time.perf_counter() - start)
    return [min(measured) for measured in times]


def _training_step(network: Any, optimizer: Any, inputs: Any) -> None:
    outputs = network(inputs)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    loss = sum(output.sigmoid().mean() for output in outputs)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def scaled_probe(probed_s: float, reference: Candidate) -> StepProbe:
    """A probe that measures nothing: it costs a step from ``reference``'s measured one by multiply-accumulates.

    Args:
        probed_s: measured seconds per step of ``reference``.
        reference: a costed candidate (its ``macs`` set by :func:`rank_candidates`).

    Returns:
        The probe.
    """
    def probe(arch: ArchitecturePlan, patch: Sequence[int], batch: int, in_channels: int, out_channels: int) -> float:
        return probed_s * estimate_macs(arch, patch, in_channels, out_channels) * batch / reference.macs
    return probe


def rank_candidates(candidates: list[Candidate], budget_s: float, in_channels: int, out_channels: int,
                    probe: StepProbe, min_iterations: int = MIN_ITERATIONS) -> tuple[Candidate, float]:
    """Cost every candidate from one probe and pick the widest that buys ``min_iterations`` steps.

    Args:
        candidates: widest first; the last is the cheapest and is the one probed.
        budget_s: training wall-clock budget.
        in_channels: image channels.
        out_channels: segmentation channels.
        probe: ``probe(arch, patch, batch, in_channels, out_channels) -> seconds per step``.
        min_iterations: steps a budget must buy.

    Returns:
        ``(chosen candidate, probed seconds per step of the cheapest)``; when none reaches
        ``min_iterations``, the one that buys the most steps.
    """
    for candidate in candidates:
        candidate.macs = estimate_macs(candidate.architecture, candidate.patch_size, in_channels,
                                       out_channels) * candidate.batch_size
    reference = candidates[-1]
    probed = float(probe(reference.architecture, reference.patch_size, reference.batch_size, in_channels,
                         out_channels))
    usable = max(budget_s - FIXED_OVERHEAD_S, 0.1 * budget_s) * TRAINING_SHARE
    for candidate in candidates:
        candidate.step_s = probed * candidate.macs / reference.macs
        candidate.iterations = usable / candidate.step_s
    log.info("auto planning: %s", "; ".join(f"{c.name} {c.step_s:.3f} s/step, {c.iterations:.0f} steps"
                                             for c in candidates))
    for candidate in candidates:
        if candidate.iterations >= min_iterations:
            return candidate, probed
    return max(candidates, key=lambda c: c.iterations), probed
