"""Tiny hand-made plans and preprocessed cases in the documented layout, for training tests."""
from __future__ import annotations

import json
import numpy as np

from autolung.labels import RegionMapping
from autolung.paths import DataRoot
from autolung.planning.plans import ArchitecturePlan, ConfigurationPlan, NormalizationPlan, Plans

DATASET = "Tiny_Train"


def tiny_configuration(dim: int = 3, patch: tuple[int, ...] = (16, 16, 16), batch_size: int = 2,
                       spacing: tuple[float, float, float] = (1.0, 1.0, 1.0), features: tuple[int, ...] = (4, 8, 16),
                       name: str = "3d_fullres") -> ConfigurationPlan:
    """A 3-stage plain U-Net configuration small enough for CPU tests."""
    stages = len(features)
    ones, twos = [1] * dim, [2] * dim
    arch = ArchitecturePlan(network="unet", dim=dim, features_per_stage=list(features),
                            strides=[ones] + [twos] * (stages - 1), kernel_sizes=[[3] * dim] * stages,
                            blocks_per_stage=[1] * stages, decoder_convs_per_stage=[1] * (stages - 1))
    return ConfigurationPlan(name=name, dim=dim, spacing=list(spacing), patch_size=list(patch),
                             batch_size=batch_size, architecture=arch,
                             normalization=[NormalizationPlan(channel_name="CT", scheme="zscore")],
                             median_shape_after_resampling=[20, 24, 24])


def tiny_plans(configurations: list[ConfigurationPlan] | None = None) -> Plans:
    configurations = configurations or [tiny_configuration()]
    return Plans(dataset_name=DATASET, planner="default", channel_names=["CT"], labels={"background": 0, "bright": 1,
                 "dark": 2}, region_mapping=RegionMapping.one_per_label([1, 2]),
                 configurations={c.name: c for c in configurations})


def tiny_case(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An image with a bright box (label 1) and a dark box (label 2) at random places, plus noise."""
    rng = np.random.default_rng(seed)
    seg = np.zeros(shape, dtype=np.int8)
    for label, size in ((1, (6, 8, 8)), (2, (4, 5, 5))):
        corner = [int(rng.integers(0, s - e)) for s, e in zip(shape, size)]
        seg[tuple(slice(c, c + e) for c, e in zip(corner, size))] = label
    image = rng.normal(0, 0.3, size=shape).astype(np.float32)
    image[seg == 1] += 2.0
    image[seg == 2] -= 1.5
    return image[None], seg[None]


def class_locations(seg: np.ndarray, max_per_class: int = 200, seed: int = 0) -> dict[str, list[list[int]]]:
    rng = np.random.default_rng(seed)
    locations = {}
    for label in (1, 2):
        voxels = np.argwhere(seg[0] == label)
        if len(voxels) > max_per_class:
            voxels = voxels[rng.choice(len(voxels), max_per_class, replace=False)]
        locations[str(label)] = voxels.tolist()
    return locations


def write_tiny_preprocessed(root: DataRoot, num_cases: int = 6, shape: tuple[int, int, int] = (20, 24, 24),
                            plans: Plans | None = None, configuration: str = "3d_fullres") -> Plans:
    """Save plans.json and ``num_cases`` cases under ``preprocessed/Tiny_Train/<configuration>``."""
    plans = plans or tiny_plans()
    plans.save(root.plans_file(DATASET))
    folder = root.preprocessed_configuration(DATASET, configuration)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(num_cases):
        case_id = f"case_{index:03d}"
        image, seg = tiny_case(shape, seed=index)
        np.save(folder / f"{case_id}.npy", image)
        np.save(folder / f"{case_id}_seg.npy", seg)
        properties = {"case_id": case_id, "plans_digest": plans.digest(), "class_locations": class_locations(seg)}
        (folder / f"{case_id}.json").write_text(json.dumps(properties))
    return plans


def load_case(root: DataRoot, case_id: str, configuration: str = "3d_fullres"):
    from autolung.training.data.cases import CaseStore

    return CaseStore(root.preprocessed_configuration(DATASET, configuration)).get(case_id)


def fast_options(**overrides):
    """Options for seconds-long CPU runs."""
    from autolung.training.options import TrainingOptions

    values = dict(epochs=2, iters_per_epoch=3, val_iters=1, device="cpu", num_workers=0, final_validation=False,
                  num_threads=1, checkpoint_every=1, plot_every=1)
    values.update(overrides)
    return TrainingOptions(**values)
