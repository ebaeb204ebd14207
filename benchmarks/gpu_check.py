"""GPU check: AMP training steps, DDP over NCCL on every GPU present, and CUDA prediction.

Usage::

    python benchmarks/gpu_check.py [--steps 20] [--patch 128 128 128] [--json out.json]

In under 5 minutes on one modern GPU it runs, with autolung's own network, loss and sliding window:

1. training steps of an nnU-Net-sized 3D U-Net (5 stages, 32-320 features, deep supervision,
   BCE + Dice) in float32 and with bfloat16 autocast, printed side by side: iterations per
   second, the AMP/float32 speed ratio, and peak GPU memory of each;
2. DDP with the NCCL backend over all GPUs present (one process per GPU, via autolung's own
   spawn and process-group code): a few steps, then a check that every rank holds identical
   weights; steps per second and peak memory per rank;
3. prediction of a 3D volume with ``predict_sliding_window`` on CUDA (window-deep sums on the GPU,
   finished slices streamed to the CPU) against a plain whole-volume accumulation on the GPU with
   the same windows and network calls, side by side: seconds per case, the ratio, peak GPU
   memory, and the largest probability difference between the two.

Without a CUDA GPU it prints why and exits 0, so CI (no GPU) can run it. Synthetic inputs: the
figures measure the hardware and the code paths, not accuracy.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autolung.network import build_network  # noqa: E402
from autolung.planning.plans import ArchitecturePlan  # noqa: E402
from autolung.training.data.targets import downsample_targets  # noqa: E402
from autolung.training.loss import build_loss  # noqa: E402


def architecture(num_stages: int = 5) -> ArchitecturePlan:
    """An nnU-Net 3d_fullres-like U-Net: features 32..320, stride 2 per stage."""
    features = [min(32 * 2 ** i, 320) for i in range(num_stages)]
    strides = [[1, 1, 1]] + [[2, 2, 2]] * (num_stages - 1)
    return ArchitecturePlan(network="unet", dim=3, features_per_stage=features, strides=strides,
                            kernel_sizes=[[3, 3, 3]] * num_stages, blocks_per_stage=[2] * num_stages,
                            decoder_convs_per_stage=[2] * (num_stages - 1))


def _batch(batch_size: int, patch: list[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    data = torch.randn((batch_size, 1, *patch), generator=generator)
    target = (data > 0.5).to(torch.uint8).repeat(1, 2, 1, 1, 1)  # two region channels
    return data.to(device), target.to(device)


def train_steps(device: torch.device, patch: list[int], steps: int, amp: bool, batch_size: int = 2) -> dict:
    """Timed optimiser steps (after 3 warm-up steps); returns it/s and peak memory."""
    torch.manual_seed(0)
    network = build_network(architecture(), 1, 2, deep_supervision=True).to(device)
    optimizer = torch.optim.SGD(network.parameters(), lr=1e-2, momentum=0.99, nesterov=True)
    loss_fn = build_loss("bce_dice")
    data, target = _batch(batch_size, patch, device)
    torch.cuda.reset_peak_memory_stats(device)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            outputs = network(data)
        targets = downsample_targets(target, [o.shape[2:] for o in outputs])
        loss = loss_fn(outputs, targets)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    for _ in range(3):
        step()
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    losses = [step() for _ in range(steps)]
    torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    return {"it_per_s": steps / elapsed, "peak_gb": torch.cuda.max_memory_allocated(device) / 1e9,
            "loss_first": losses[0], "loss_last": losses[-1], "finite": bool(np.isfinite(losses).all())}


def _ddp_rank(rank: int, world_size: int, init_method: str, patch: list[int], steps: int, out: str) -> None:
    from autolung.training import distributed as ddp

    context = ddp.DistributedContext(rank=rank, world_size=world_size, local_rank=rank)
    torch.cuda.set_device(rank)
    device = torch.device("cuda", rank)
    ddp.init_process_group(context, device, init_method)
    try:
        torch.manual_seed(0)
        module = build_network(architecture(), 1, 2, deep_supervision=True).to(device)
        network = torch.nn.parallel.DistributedDataParallel(module, device_ids=[rank])
        optimizer = torch.optim.SGD(network.parameters(), lr=1e-2, momentum=0.99, nesterov=True)
        loss_fn = build_loss("bce_dice")
        data, target = _batch(2, patch, device)
        torch.cuda.reset_peak_memory_stats(device)
        timings = []
        for index in range(steps + 2):
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                outputs = network(data + rank)  # different data per rank: gradients must be averaged
            loss = loss_fn(outputs, downsample_targets(target, [o.shape[2:] for o in outputs]))
            loss.backward()
            optimizer.step()
            torch.cuda.synchronize(device)
            if index >= 2:
                timings.append(time.perf_counter() - start)
        ddp.check_replicas_identical(module, context)
        result = {"rank": rank, "it_per_s": len(timings) / sum(timings),
                  "peak_gb": torch.cuda.max_memory_allocated(device) / 1e9}
        Path(out).with_suffix(f".rank{rank}.json").write_text(json.dumps(result))
    finally:
        ddp.destroy_process_group()


def ddp_check(patch: list[int], steps: int, work: Path) -> list[dict]:
    """DDP over NCCL on every visible GPU; returns one record per rank."""
    from autolung.training import distributed as ddp

    world_size = torch.cuda.device_count()
    out = work / "ddp"
    ddp.spawn(_ddp_rank, world_size, (patch, steps, str(out)))
    return [json.loads(out.with_suffix(f".rank{r}.json").read_text()) for r in range(world_size)]


def whole_volume_reference(network: torch.nn.Module, data: np.ndarray, patch: list[int]) -> np.ndarray:
    """Probabilities summed into whole-volume GPU tensors: the plain algorithm the stream replaces."""
    import autolung.inference.sliding_window as sw

    tensor = torch.from_numpy(data).cuda()
    flips = sw.mirror_combinations(sw.ALL_AXES, is_2d=False)
    gaussian = torch.from_numpy(sw.window_weights(patch)).cuda()
    sums, weights = None, torch.zeros(data.shape[1:], device="cuda")
    with torch.inference_mode():
        for batch_windows in sw._batches(sw._windows(data.shape[1:], patch, 0.5), 2):
            batch = torch.stack([tensor[(slice(None), *w)] for w in batch_windows])
            probs = sw._predict_batch([network], batch, flips, "bfloat16")
            if sums is None:
                sums = torch.zeros((probs.shape[1], *data.shape[1:]), device="cuda")
            for window, window_probs in zip(batch_windows, probs):
                sums[(slice(None), *window)] += window_probs * gaussian
                weights[window] += gaussian * len(flips)
    return (sums / weights).cpu().numpy()


def predict_check(shape: list[int], patch: list[int], device: str = "cuda") -> dict:
    """Sliding window on CUDA (streamed slabs) vs whole-volume GPU accumulation, side by side."""
    import autolung.inference.sliding_window as sw

    torch.manual_seed(0)
    network = build_network(architecture(), 1, 2, deep_supervision=False).to(device).eval()
    data = np.random.default_rng(0).normal(size=(1, *shape)).astype(np.float32)
    runs = {}
    for name, run in (("streamed", lambda: sw.predict_sliding_window(network, data, patch, device=device,
                                                                      precision="bfloat16")),
                      ("whole_volume", lambda: whole_volume_reference(network, data, patch))):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        start = time.perf_counter()
        probabilities = run()
        torch.cuda.synchronize()
        runs[name] = {"seconds": time.perf_counter() - start, "peak_gb": torch.cuda.max_memory_allocated() / 1e9,
                      "probabilities": probabilities}
    difference = float(np.abs(runs["streamed"].pop("probabilities") - runs["whole_volume"].pop("probabilities")).max())
    return {**runs, "max_abs_difference": difference,
            "streamed_vs_whole_volume_time_ratio": runs["streamed"]["seconds"] / runs["whole_volume"]["seconds"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per mode")
    parser.add_argument("--patch", type=int, nargs=3, default=[128, 128, 128], help="training patch Z Y X")
    parser.add_argument("--volume", type=int, nargs=3, default=[256, 384, 384], help="predicted volume Z Y X")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--work", type=Path, default=Path("/tmp/autolung_gpu_check"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible to torch "
              f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); nothing to check.")
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda", 0)
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    print(f"GPUs: {names}; torch {torch.__version__}, CUDA {torch.version.cuda}")
    report: dict = {"gpus": names, "torch": torch.__version__}
    started = time.perf_counter()

    fp32 = train_steps(device, args.patch, args.steps, amp=False)
    amp = train_steps(device, args.patch, args.steps, amp=True)
    report["train"] = {"float32": fp32, "bfloat16_autocast": amp}
    print(f"\ntraining, patch {args.patch}, batch 2, {args.steps} steps   float32      bf16 AMP    AMP/fp32")
    print(f"  iterations per second                        {fp32['it_per_s']:8.2f}    {amp['it_per_s']:8.2f}"
          f"    {amp['it_per_s'] / fp32['it_per_s']:6.2f}x")
    print(f"  peak GPU memory (GB)                         {fp32['peak_gb']:8.2f}    {amp['peak_gb']:8.2f}"
          f"    {amp['peak_gb'] / fp32['peak_gb']:6.2f}x")
    print(f"  losses finite                                {fp32['finite']!s:>8}    {amp['finite']!s:>8}")

    ranks = ddp_check(args.patch, max(5, args.steps // 2), args.work)
    report["ddp_nccl"] = ranks
    print(f"\nDDP over NCCL, {len(ranks)} process(es), bf16 AMP: replicas identical after the steps")
    for rank in ranks:
        print(f"  rank {rank['rank']}: {rank['it_per_s']:.2f} it/s, peak {rank['peak_gb']:.2f} GB "
              f"({rank['it_per_s'] / amp['it_per_s']:.2f}x one-process AMP)")

    prediction = predict_check(args.volume, args.patch)
    report["predict"] = prediction
    streamed, whole = prediction["streamed"], prediction["whole_volume"]
    print(f"\nprediction of {args.volume} (bf16, TTA on all axes)   streamed slabs   whole-volume sums   ratio")
    print(f"  seconds per case                               {streamed['seconds']:10.2f}       {whole['seconds']:10.2f}"
          f"        {prediction['streamed_vs_whole_volume_time_ratio']:.2f}x")
    print(f"  peak GPU memory (GB)                           {streamed['peak_gb']:10.2f}       {whole['peak_gb']:10.2f}")
    print(f"  largest probability difference                 {prediction['max_abs_difference']:.2e}")
    report["total_seconds"] = time.perf_counter() - started
    print(f"\ntotal {report['total_seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    ok = fp32["finite"] and amp["finite"] and prediction["max_abs_difference"] < 1e-3
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
