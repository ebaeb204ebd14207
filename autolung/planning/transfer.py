"""Plans of one dataset for another (nnU-Net's ``move_plans_between_datasets``), for pretraining.

To pretrain on a large dataset and fine-tune on a small one, both must be trained with the same
network: the same configurations, patch sizes, spacings and normalisation. The source's plans are
copied under the target's name, with the target's own labels and output regions (which may
differ: only the segmentation heads depend on them, and fine-tuning skips those). The channels
must agree in number, since the first convolution depends on them.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from autolung.errors import InvalidInputError
from autolung.paths import DataRoot
from autolung.planning.plans import Plans
from autolung.planning.registry import planner_in_use, planners_with_plans

logger = logging.getLogger(__name__)


def transfer_plans(data_root: DataRoot, source_dataset: str, target_folder: str | Path,
                   source_planner: str | None = None, target_planner: str | None = None,
                   overwrite: bool = False) -> Path:
    """Write ``preprocessed/<target>/plans[_<target_planner>].json`` from the source's plans.

    Args:
        data_root: the data root.
        source_dataset: name of the planned source dataset.
        target_folder: the raw target dataset (its labels and channels are read).
        source_planner: which plans of the source; None: its only plans.
        target_planner: name of the plans for the target (default: the source's planner name);
            preprocess and train the target with ``planner`` set to it.
        overwrite: replace existing target plans.

    Returns:
        The written plans file.

    Raises:
        InvalidInputError: no source plans, another channel count, or existing target plans
            without ``overwrite``.
    """
    from autolung.dataset.layout import load_dataset

    source_planner = planner_in_use(source_planner, planners_with_plans(data_root, source_dataset), source_dataset)
    source_file = data_root.plans_file(source_dataset, source_planner)
    if not source_file.is_file():
        raise InvalidInputError("no plans for the source dataset; plan it first", path=source_file)
    plans = Plans.load(source_file)
    spec = load_dataset(target_folder)
    if spec.num_channels != len(plans.channel_names):
        raise InvalidInputError(f"the target has {spec.num_channels} channel(s) ({', '.join(spec.channel_names)}) "
                                f"but the source plans {len(plans.channel_names)} "
                                f"({', '.join(plans.channel_names)}); the networks could not share weights",
                                path=spec.dataset_json)
    planner = target_planner or source_planner
    target_file = data_root.plans_file(spec.name, planner)
    if target_file.exists() and not overwrite:
        raise InvalidInputError("plans already exist for the target; set overwrite to replace them, or choose "
                                "another target planner name", path=target_file)
    transferred = replace(plans, dataset_name=spec.name, planner=planner, labels=dict(spec.labels),
                          region_mapping=spec.region_mapping, file_ending=spec.file_ending)
    target_file.parent.mkdir(parents=True, exist_ok=True)
    transferred.save(target_file)
    data_root.record_dataset_source(spec.folder)
    logger.info("plans of %s (%s) transferred to %s as %s", source_dataset, source_planner, spec.name, target_file)
    return target_file
