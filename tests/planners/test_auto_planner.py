"""The ``auto`` planner: GPU rules on a GPU; on a CPU the widest plan a budget buys, from a mocked probe."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autolung.paths import DataRoot
from autolung.planning.plans import Plans
from autolung.planning import budget as sizing
from autolung.planning.explain import format_explanation
from autolung.planning.overrides import PlanOverrides
from autolung.planning.run import planned_time_budget
from autolung.training.options import TrainingOptions
from autolung.training.run import with_planned_budget
import autolung_cli.commands.planning  # noqa: F401 - registers the commands
from autolung_cli.app import app
from planners.auto import CPU_LADDER, SMALL_BATCH, AutoPlanner, recommend_configuration
from planners.cpu import CpuPlanner
from planners.default import DefaultPlanner
from synthetic_fingerprints import synthetic_fingerprint

runner = CliRunner()


def hippocampus_like() -> dict:
    return synthetic_fingerprint([(1.0, 1.0, 1.0)] * 20, [(36, 50, 35)] * 20)


def patches_2d() -> dict:
    return synthetic_fingerprint([(999.0, 1.0, 1.0)] * 100, [(1, 48, 48)] * 100, is_2d=True,
                                 value_range={"min": 0.0, "max": 255.0, "integer": True}, file_ending=".png")


class Probe:
    """A probe that charges ``seconds_per_gmac`` per 1e9 multiply-accumulates of the probed step."""

    def __init__(self, seconds_per_gmac: float) -> None:
        self.seconds_per_gmac = seconds_per_gmac
        self.calls = []

    def __call__(self, arch, patch, batch, in_channels, out_channels) -> float:
        self.calls.append((list(patch), batch, list(arch.features_per_stage)))
        return sizing.estimate_macs(arch, patch, in_channels, out_channels) * batch / 1e9 * self.seconds_per_gmac


def interleaved_probe(probe: Probe):
    """``probe`` in the form of :func:`sizing.probe_interleaved`."""
    def interleaved(requests, in_channels, out_channels):
        return [probe(arch, patch, batch, in_channels, out_channels) for arch, patch, batch in requests]
    return interleaved


def _same_configuration(a, b) -> bool:
    return (a.patch_size == b.patch_size and a.batch_size == b.batch_size
            and a.architecture.features_per_stage == b.architecture.features_per_stage)


def test_gpu_gets_the_default_plan_without_probing() -> None:
    probe = Probe(1.0)
    plans = AutoPlanner(hippocampus_like(), device="cuda", time_budget_s=300, probe=probe).plan()
    reference = DefaultPlanner(hippocampus_like()).plan()
    assert probe.calls == [] and plans.planner == "auto"
    for name, config in plans.configurations.items():
        assert _same_configuration(config, reference.configurations[name])
        assert config.decisions[0].what == "plan choice" and "cuda" in config.decisions[0].rule
        assert planned_time_budget(config) == 300


def test_fast_cpu_and_long_budget_buy_the_gpu_plan() -> None:
    """The GPU plan's network and patch; on a CPU its batch is capped like every rung's."""
    probe = Probe(0.01)  # 100 GMAC/s
    plans = AutoPlanner(hippocampus_like(), device="cpu", time_budget_s=3600, probe=probe).plan()
    full = plans.configurations["3d_fullres"]
    gpu = DefaultPlanner(hippocampus_like()).plan().configurations["3d_fullres"]
    assert full.patch_size == gpu.patch_size
    assert full.architecture.features_per_stage == gpu.architecture.features_per_stage
    assert full.batch_size == min(gpu.batch_size, SMALL_BATCH[3])
    assert full.decisions[0].value == CPU_LADDER[0][0]
    assert planned_time_budget(full) == 3600
    # only the cheapest candidate is measured, once per configuration
    assert len(probe.calls) == len(plans.configurations)


def test_slow_cpu_gets_a_slimmer_plan_and_the_budget_decides() -> None:
    probe = Probe(2.0)  # 0.5 GMAC/s: a loaded 2-core CPU
    short = AutoPlanner(hippocampus_like(), device="cpu", time_budget_s=300, probe=probe).plan()
    long = AutoPlanner(hippocampus_like(), device="cpu", time_budget_s=36000, probe=probe).plan()
    short_full, long_full = short.configurations["3d_fullres"], long.configurations["3d_fullres"]
    assert short_full.architecture.features_per_stage[0] == 16
    assert sizing.estimate_macs(short_full.architecture, short_full.patch_size, 1, 1) * short_full.batch_size < \
        sizing.estimate_macs(long_full.architecture, long_full.patch_size, 1, 1) * long_full.batch_size
    steps = dict(short_full.decisions[3].value)  # candidates: s/step and steps in the budget
    chosen = steps[short_full.decisions[0].value]
    assert chosen["steps_in_budget"] >= sizing.MIN_ITERATIONS or \
        chosen["steps_in_budget"] == max(v["steps_in_budget"] for v in steps.values())


def test_small_2d_images_keep_full_width_when_the_budget_buys_it() -> None:
    # 48x48 patches: the patch is the image for every candidate; only the width differs. At the
    # cpu preset's measured 0.04 s/step (7,000 steps in 5 minutes) the full width buys > 1000.
    cpu_plan = CpuPlanner(patches_2d()).plan().configurations["2d"]
    cheapest_macs = sizing.estimate_macs(cpu_plan.architecture, cpu_plan.patch_size, 1, 1) * cpu_plan.batch_size
    probe = Probe(0.04 / (cheapest_macs / 1e9))
    plans = AutoPlanner(patches_2d(), device="cpu", time_budget_s=300, probe=probe).plan()
    config = plans.configurations["2d"]
    assert config.architecture.features_per_stage[0] == 32
    assert config.patch_size == [48, 48]


def test_default_budget_on_cpu_is_recorded() -> None:
    plans = AutoPlanner(patches_2d(), device="cpu", probe=Probe(0.01)).plan()
    config = plans.configurations["2d"]
    assert planned_time_budget(config) == sizing.DEFAULT_CPU_BUDGET_S
    assert "no time budget given" in format_explanation(plans)


def test_training_uses_the_planned_budget_unless_given(caplog) -> None:
    config = AutoPlanner(patches_2d(), device="cpu", time_budget_s=420, probe=Probe(0.01)).plan().configurations["2d"]
    assert with_planned_budget(TrainingOptions(), config).time_budget_s == 420
    assert with_planned_budget(TrainingOptions(time_budget_s=600), config).time_budget_s == 600
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # within 2x of the planned budget
    assert with_planned_budget(TrainingOptions(time_budget_s=60), config).time_budget_s == 60
    warning = next(r for r in caplog.records if r.levelname == "WARNING").getMessage()
    assert "training for 60 s with a plan sized for 420 s" in warning and "time_budget_s=60" in warning
    default = DefaultPlanner(patches_2d()).plan().configurations["2d"]
    assert with_planned_budget(TrainingOptions(), default).time_budget_s is None


def test_estimate_macs_grows_with_width_and_patch() -> None:
    plans = DefaultPlanner(hippocampus_like()).plan().configurations["3d_fullres"]
    cpu = CpuPlanner(hippocampus_like()).plan().configurations["3d_fullres"]
    full = sizing.estimate_macs(plans.architecture, plans.patch_size, 1, 3)
    assert full > 0
    assert sizing.estimate_macs(cpu.architecture, plans.patch_size, 1, 3) < full / 3  # half width: ~1/4
    smaller = [p // 2 for p in plans.patch_size]
    assert sizing.estimate_macs(plans.architecture, smaller, 1, 3) < full


def test_real_probe_measures_a_small_network() -> None:
    from autolung.planning.plans import ArchitecturePlan

    arch = ArchitecturePlan("unet", 2, [4, 8], [[1, 1], [2, 2]], [[3, 3], [3, 3]], [1, 1], [1])
    wide = ArchitecturePlan("unet", 2, [32, 64], [[1, 1], [2, 2]], [[3, 3], [3, 3]], [1, 1], [1])
    small, large = sizing.probe_interleaved([(arch, [32, 32], 2), (wide, [32, 32], 2)], 1, 1, rounds=3,
                                            max_seconds=5.0)
    assert 0 < small < large < 10  # 64x the multiply-accumulates


def test_auto_planner_probes_every_configuration_in_one_interleaved_call(monkeypatch) -> None:
    calls = []

    def interleaved(requests, in_channels, out_channels):
        calls.append([list(patch) for _, patch, _ in requests])
        return [Probe(0.01)(arch, patch, batch, in_channels, out_channels) for arch, patch, batch in requests]

    monkeypatch.setattr(sizing, "probe_interleaved", interleaved)
    plans = AutoPlanner(hippocampus_like(), device="cpu", time_budget_s=300).plan()
    assert len(calls) == 1 and len(calls[0]) == len(plans.configurations) >= 2
    probe = next(d for d in plans.configurations["2d"].decisions if d.what == "throughput probe")
    assert "taken in turn" in probe.rule


def test_cli_plan_auto_explains_the_choice(tiny_msd: Path, data_root: DataRoot, monkeypatch) -> None:
    monkeypatch.setattr(sizing, "probe_interleaved", interleaved_probe(Probe(0.01)))
    result = runner.invoke(app, ["plan", "-d", str(tiny_msd), "--root", str(data_root.root), "--planner", "auto",
                                 "--device", "cpu", "--time-budget", "5m", "--explain", "-np", "1"])
    assert result.exit_code == 0, result.output
    assert "plan choice" in result.output and "throughput probe" in result.output
    assert "training budget: 300" in result.output
    plans = json.loads(data_root.plans_file("Tiny_CT", "auto").read_text())
    assert plans["planner"] == "auto"
    # an explicit planner still wins: the default plans are untouched by auto and vice versa
    result = runner.invoke(app, ["plan", "-d", str(tiny_msd), "--root", str(data_root.root), "--planner", "default",
                                 "-np", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads(data_root.plans_file("Tiny_CT").read_text())["planner"] == "default"


def test_budget_for_a_planner_without_budget_warns(tiny_msd: Path, data_root: DataRoot, caplog) -> None:
    from autolung.planning.run import plan_dataset

    plans = plan_dataset(tiny_msd, data_root, planner="cpu", time_budget_s=60, num_processes=1)
    assert plans.planner == "cpu"
    assert "does not size its plan to a time budget" in caplog.text


def test_demo_and_benchmark_plan_auto_for_their_device_and_budget(tmp_path: Path, monkeypatch) -> None:
    import autolung.planning.run as planning_run
    import autolung.preprocessing.run as preprocessing_run
    from autolung.benchmarking import steps
    from autolung.benchmarking.settings import BenchmarkSettings
    from autolung.demo import DemoOptions, plan_and_preprocess
    from autolung.planning.registry import sizes_to_device_and_budget

    calls = []

    class FakePlans:
        configurations = {"3d_fullres": None}

        def digest(self) -> str:
            return "d"

    monkeypatch.setattr(planning_run, "plan_dataset", lambda *a, **k: calls.append(k) or FakePlans())
    monkeypatch.setattr(preprocessing_run, "preprocess_dataset", lambda *a, **k: None)
    root = DataRoot(tmp_path)
    plan_and_preprocess(tmp_path, root, DemoOptions(planner="auto", device="cpu", time_budget_s=120))
    plan_and_preprocess(tmp_path, root, DemoOptions(planner="cpu", device="cpu", time_budget_s=120))
    assert calls[0]["time_budget_s"] == 120 and calls[0]["device"] == "cpu"
    assert "time_budget_s" not in calls[1]
    assert sizes_to_device_and_budget("auto") and not sizes_to_device_and_budget("default")

    class Job:
        folder = tmp_path
        data_root = root
        settings = BenchmarkSettings(["D"], training=TrainingOptions(planner="auto", time_budget_s=90, device="cpu"))

    assert steps.plan_step(Job())["configurations"] == ["3d_fullres"]
    assert calls[2]["time_budget_s"] == 90 and calls[2]["device"] == "cpu"


def test_cli_default_is_auto_end_to_end(tiny_msd: Path, data_root: DataRoot, monkeypatch) -> None:
    """No planner named anywhere: plan_and_preprocess plans auto, preprocess and train find those plans."""
    import autolung_cli.commands.preprocess  # noqa: F401 - registers the commands
    import autolung_cli.commands.train  # noqa: F401

    monkeypatch.setattr(sizing, "probe_interleaved", interleaved_probe(Probe(0.01)))
    root = ["--root", str(data_root.root)]
    result = runner.invoke(app, ["plan_and_preprocess", "-d", str(tiny_msd), *root, "-np", "1", "--no-progress",
                                 "--device", "cpu", "--time-budget", "5m", "-c", "3d_fullres"])
    assert result.exit_code == 0, result.output
    plans = json.loads(data_root.plans_file("Tiny_CT", "auto").read_text())
    assert plans["planner"] == "auto" and not data_root.plans_file("Tiny_CT").exists()
    assert data_root.preprocessed_configuration("Tiny_CT", "3d_fullres", "auto").is_dir()
    result = runner.invoke(app, ["preprocess", "-d", str(tiny_msd), *root, "-np", "1", "--no-progress",
                                 "-c", "3d_fullres"])
    assert result.exit_code == 0, result.output
    assert "3d_fullres__auto" in result.output
    # no configuration named: the one the plans recommend (3d_fullres: this probe buys it enough steps)
    assert Plans.load(data_root.plans_file("Tiny_CT", "auto")).recommended().value == "3d_fullres"
    result = runner.invoke(app, ["train", "-d", "Tiny_CT", "-f", "0", *root, "--epochs", "1",
                                 "--iters-per-epoch", "1", "--val-iters", "1", "--no-final-validation",
                                 "--num-workers", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "trained 3d_fullres fold 0" in result.output
    fold = data_root.training_output("Tiny_CT", "3d_fullres", "auto") / "fold_0"
    assert (fold / "checkpoint_final.pt").is_file()
    assert json.loads((fold / "training_info.json").read_text())["planner"] == "auto"
    # nor at prediction: no inference choice is stored, so the only trained configuration
    import autolung_cli.commands.predict  # noqa: F401

    image = sorted((tiny_msd / "imagesTr").glob("*.nii.gz"))[0]
    result = runner.invoke(app, ["predict", "-i", str(image), "-o", str(data_root.root / "pred"), "-d", "Tiny_CT",
                                 "-f", "0", *root, "--disable-tta", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert len(list((data_root.root / "pred").glob("*.nii.gz"))) == 1
    # a second planner's plans make the choice ambiguous: named, not guessed
    assert runner.invoke(app, ["plan", "-d", str(tiny_msd), *root, "--planner", "cpu", "-np", "1"]).exit_code == 0
    result = runner.invoke(app, ["train", "-d", "Tiny_CT", "-c", "3d_fullres", "-f", "0", *root, "--epochs", "1",
                                 "--iters-per-epoch", "1", "--val-iters", "1", "--no-final-validation",
                                 "--num-workers", "0", "--device", "cpu"])
    from autolung.errors import InvalidInputError
    from autolung_cli.flags import with_flags

    assert result.exit_code != 0 and isinstance(result.exception, InvalidInputError)
    assert "several planners (auto, cpu); name the one to use with --planner" in with_flags(str(result.exception))


def chest_xrays(lesion_p25: float | None = 26000.0) -> dict:
    return synthetic_fingerprint([(999.0, 1.0, 1.0)] * 64, [(1, 512, 512)] * 64, is_2d=True,
                                 value_range={"min": 0.0, "max": 255.0, "integer": True}, file_ending=".png",
                                 lesion_p25=lesion_p25)


def _in_plane(plans) -> tuple[list[float], str]:
    config = plans.configurations["2d"]
    decision = next(d for d in config.decisions if d.what == "in-plane resolution")
    return config.spacing[1:], decision.value


def test_large_2d_images_are_coarsened_until_the_patch_sees_the_whole_image() -> None:
    # A loaded CPU (2 s per GMAC): at 1 mm only a 192x192-ish patch of the 512x512 X-ray trains in 5 minutes.
    probe = Probe(2.0)
    plans = AutoPlanner(chest_xrays(), device="cpu", time_budget_s=300, probe=probe).plan()
    spacing, value = _in_plane(plans)
    config = plans.configurations["2d"]
    assert spacing == [4.0, 4.0] and value == "4x coarser"
    assert config.median_shape_after_resampling[1:] == [128, 128]
    assert config.patch_size == [128, 128]  # the whole (coarser) image
    assert config.spacing[0] == 999.0  # the slice axis is never touched
    # The coarser candidates are costed from the one step measured, at 1 mm: no second probe.
    assert probe.calls == [([192, 192], 2, [16, 32, 64, 128, 256, 256])]
    probe_decision = next(d for d in config.decisions if d.what == "throughput probe")
    assert "at the finer spacing" in probe_decision.rule and "patch [192, 192]" in probe_decision.rule
    explanation = format_explanation(plans)
    assert "covers only" in explanation and "4x coarser" in explanation


def test_small_lesions_or_overrides_keep_the_fine_spacing() -> None:
    # 100 mm² lesions: 2x coarser would leave them 25 pixels (< 64).
    spacing, value = _in_plane(AutoPlanner(chest_xrays(lesion_p25=100.0), device="cpu", time_budget_s=300,
                                           probe=Probe(2.0)).plan())
    assert spacing == [1.0, 1.0] and value == "kept"
    # No lesion sizes in the fingerprint: nothing to check the coarser spacing against.
    spacing, value = _in_plane(AutoPlanner(chest_xrays(lesion_p25=None), device="cpu", time_budget_s=300,
                                           probe=Probe(2.0)).plan())
    assert spacing == [1.0, 1.0] and value == "kept"
    overrides = PlanOverrides(batch_size=2)
    spacing, value = _in_plane(AutoPlanner(chest_xrays(), device="cpu", time_budget_s=300, probe=Probe(2.0),
                                           overrides=overrides).plan())
    assert spacing == [1.0, 1.0] and value == "kept"


def test_images_the_patch_already_covers_keep_their_spacing() -> None:
    plans = AutoPlanner(patches_2d(), device="cpu", time_budget_s=300, probe=Probe(2.0)).plan()
    assert _in_plane(plans) == ([1.0, 1.0], "kept")
    # A fast CPU with a long budget buys the GPU plan, whose 512x512 patch covers the image.
    plans = AutoPlanner(chest_xrays(), device="cpu", time_budget_s=36000, probe=Probe(0.001)).plan()
    assert _in_plane(plans) == ([1.0, 1.0], "kept")


def test_short_cpu_budget_recommends_2d_with_a_small_batch() -> None:
    """Task04 on one core in 5 minutes: 3d_fullres buys a few hundred steps, so 2d is recommended,
    and its batch is capped (39 patches of 56x40 bought 539 steps and test Dice 0, 8 bought 2,222
    and 0.821)."""
    plans = AutoPlanner(hippocampus_like(), device="cpu", time_budget_s=300, probe=Probe(2.0)).plan()
    recommended = plans.recommended()
    assert recommended.value == "2d" and "3d_fullres buys only" in recommended.rule
    two_d = plans.configurations["2d"]
    assert two_d.batch_size <= SMALL_BATCH[2]
    assert "at most 8 (planner cap)" in next(d.rule for d in two_d.decisions if d.what == "batch size")
    assert plans.configurations["3d_fullres"].batch_size <= SMALL_BATCH[3]
    long = AutoPlanner(hippocampus_like(), device="cpu", time_budget_s=3600, probe=Probe(0.01)).plan()
    assert long.recommended().value == "3d_fullres" and ">= 2000" in long.recommended().rule
    assert AutoPlanner(patches_2d(), device="cpu", time_budget_s=300, probe=Probe(2.0)).plan().recommended().value \
        == "2d"
    # on a GPU nothing is recommended beyond nnU-Net's habit
    gpu = AutoPlanner(hippocampus_like(), device="cuda", time_budget_s=300, probe=Probe(2.0)).plan()
    assert gpu.recommended_configuration is None and gpu.recommended().value == "3d_fullres"


@pytest.mark.parametrize("steps, expected", [
    ({"2d": 30000.0, "3d_fullres": 2400.0}, "3d_fullres"),  # 3d buys enough steps
    ({"2d": 3000.0, "3d_fullres": 1200.0}, "2d"),  # not enough for 3d (NSCLC in 5 minutes: 1,004)
    ({"2d": 3000.0, "3d_fullres": 300.0}, "2d"),
    ({"2d": 200.0, "3d_fullres": 300.0}, "3d_fullres"),  # 2d is no cheaper
    ({"2d": 50.0}, "2d"),
    ({"3d_fullres": 50.0, "3d_lowres": 500.0}, "3d_fullres"),
])
def test_recommendation_rule(steps: dict, expected: str) -> None:
    assert recommend_configuration(steps, 1000, 300.0).value == expected


def test_a_3d_network_that_never_pools_an_axis_yields_to_2d() -> None:
    thin = {"z": 6}
    decision = recommend_configuration({"2d": 28000.0, "3d_fullres": 3000.0}, 1000, 1200.0, thin)
    assert decision.value == "2d" and "never downsamples z (6 voxels)" in decision.rule
    # 2d buys fewer steps than 3d but enough to converge: still 2d (LIDC, 5 minutes)
    assert recommend_configuration({"2d": 1426.0, "3d_fullres": 2133.0}, 1000, 300.0, thin).value == "2d"
    # not when 2d buys fewer steps and too few, and not when 3d pools every axis
    assert recommend_configuration({"2d": 800.0, "3d_fullres": 3000.0}, 1000, 1200.0, thin).value == "3d_fullres"
    assert recommend_configuration({"2d": 28000.0, "3d_fullres": 3000.0}, 1000, 1200.0, {}).value == "3d_fullres"


def test_thin_nodule_crops_recommend_2d_at_any_cpu_budget() -> None:
    """LIDC-like crops of 6 slices: the 3D patch cannot be pooled along z, so 2d even at 20 minutes."""
    crops = synthetic_fingerprint([(1.25, 0.703125, 0.703125)] * 40, [(6, 44, 44)] * 40)
    plans = AutoPlanner(crops, device="cpu", time_budget_s=1200, probe=Probe(0.01)).plan()
    full = plans.configurations["3d_fullres"]
    assert full.patch_size[0] < 8 and all(stride[0] == 1 for stride in full.architecture.strides)
    assert plans.recommended().value == "2d" and "never downsamples z" in plans.recommended().rule
    # Hippocampus-like volumes pool every axis and keep 3d_fullres on a long budget
    assert AutoPlanner(hippocampus_like(), device="cpu", time_budget_s=3600,
                       probe=Probe(0.01)).plan().recommended().value == "3d_fullres"
