from __future__ import annotations

import json

import pytest

from autolung.errors import AutolungError
from autolung.training.distributed import split_batch
from autolung.training.options import TrainingOptions, parse_duration
from autolung.training.schedule import Schedule, poly_lr
from autolung.training.splits import fold_cases, load_or_create_splits, make_splits, parse_fold


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("1.5h", 5400), ("45", 45), (" 2M ", 120)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "10d", "-5s", "0s"])
def test_parse_duration_rejects(text):
    with pytest.raises(AutolungError):
        parse_duration(text)


def test_options_validation():
    with pytest.raises(AutolungError, match="`loss` must be one of"):
        TrainingOptions(loss="focal")
    with pytest.raises(AutolungError, match="`epochs` must be at least 1"):
        TrainingOptions(epochs=0)


def test_poly_schedule_by_epoch_and_by_time():
    assert poly_lr(1e-2, 0.0) == pytest.approx(1e-2)
    assert poly_lr(1e-2, 1.0) == 0.0
    assert poly_lr(1e-2, 0.5) == pytest.approx(1e-2 * 0.5 ** 0.9)
    by_epochs = Schedule(epochs=10, iters_per_epoch=5, time_budget_s=None, initial_lr=1e-2)
    assert by_epochs.learning_rate(5, 3, elapsed_s=1e6) == pytest.approx(poly_lr(1e-2, 0.5))
    assert not by_epochs.out_of_time(1e9)
    budget = Schedule(epochs=1000, iters_per_epoch=5, time_budget_s=100, initial_lr=1e-2)
    assert budget.progress(1, 0, elapsed_s=25) == pytest.approx(0.25)
    assert budget.learning_rate(1, 0, elapsed_s=100) == 0.0
    assert budget.out_of_time(100) and not budget.out_of_time(99)


def test_warmup_rises_linearly_then_follows_the_poly_curve():
    by_iterations = Schedule(epochs=1, iters_per_epoch=100, time_budget_s=None, initial_lr=1e-2, warmup=0.1)
    assert by_iterations.learning_rate(0, 0, 0.0) == pytest.approx(1e-2 * 0.1)
    assert by_iterations.learning_rate(0, 4, 0.0) == pytest.approx(1e-2 * 0.5)
    # Past the warm-up an epochs-only run is on nnU-Net's per-epoch curve (progress 0 in epoch 0).
    assert by_iterations.learning_rate(0, 50, 0.0) == pytest.approx(1e-2)
    by_time = Schedule(epochs=1000, iters_per_epoch=250, time_budget_s=100.0, initial_lr=1e-2, warmup=0.2)
    assert by_time.learning_rate(0, 0, 10.0) == pytest.approx(poly_lr(1e-2, 0.1) * 0.5)
    assert by_time.learning_rate(3, 0, 60.0) == pytest.approx(poly_lr(1e-2, 0.6))
    plain = Schedule(epochs=1000, iters_per_epoch=250, time_budget_s=100.0, initial_lr=1e-2)
    assert plain.learning_rate(0, 0, 0.0) == pytest.approx(1e-2)


def test_splits_are_seeded_saved_and_respected(tmp_path):
    cases = [f"c{i}" for i in range(12)]
    splits = make_splits(cases)
    assert splits == make_splits(list(reversed(cases)))
    assert len(splits) == 5
    assert sorted(c for s in splits for c in s["val"]) == sorted(cases)
    for fold in splits:
        assert not set(fold["train"]) & set(fold["val"])
    path = tmp_path / "splits.json"
    assert load_or_create_splits(path, cases) == splits
    custom = [{"train": cases[:6], "val": cases[6:]}]
    path.write_text(json.dumps(custom))
    assert load_or_create_splits(path, cases) == custom
    assert fold_cases(custom, 0, cases) == (cases[:6], cases[6:])
    with pytest.raises(AutolungError):
        fold_cases(custom, 3, cases)
    path.write_text(json.dumps([{"train": ["nope"], "val": []}]))
    with pytest.raises(AutolungError, match="not preprocessed"):
        load_or_create_splits(path, cases)


def test_fold_all_and_parse_fold():
    cases = [f"c{i}" for i in range(8)]
    train, val = fold_cases([], "all", cases)
    assert train == cases and set(val) <= set(cases) and val
    assert parse_fold("all") == "all" and parse_fold("3") == 3
    with pytest.raises(AutolungError):
        parse_fold("x")


def test_split_batch_across_ranks():
    # Global batch 2 (second sample forced) over 2 ranks: rank 1 owns the forced sample.
    assert split_batch(2, 0.33, 0, 2) == [False]
    assert split_batch(2, 0.33, 1, 2) == [True]
    assert split_batch(2, 0.33, 0, 1) == [False, True]
    flags = split_batch(5, 0.33, 0, 2) + split_batch(5, 0.33, 1, 2)
    assert flags == [False, False, False, True, True]
    with pytest.raises(ValueError):
        split_batch(1, 0.33, 0, 2)


def test_cli_reads_torchrun_rank_from_environment(monkeypatch):
    from autolung_cli.commands.train import _distributed_from_environment

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert _distributed_from_environment() is None
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    context = _distributed_from_environment()
    assert (context.rank, context.world_size, context.local_rank, context.is_main) == (3, 4, 1, False)
