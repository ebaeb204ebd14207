"""``train_fold``: assemble plans, data, network and trainer for one fold, and run it.

Layout written (see docs/architecture.md): ``results/<Dataset>/<config>__<planner>/`` gets copies
of plans.json (and fingerprint.json), and ``fold_<k>/`` gets checkpoints, ``training_info.json``,
``training_log.jsonl``, ``progress.png`` and ``validation/``.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from autolung import __version__
from autolung.errors import AutolungError
from autolung.output_kind import AUTO_LOSS, SIGMOID_REGIONS, default_output_kind, output_kind_from_training_info
from autolung.paths import DataRoot
from autolung.planning.plans import ConfigurationPlan, Plans
from autolung.planning.registry import planner_in_use, planners_with_plans
from autolung.progress import ProgressReporter
from autolung.results import FoldFolder, TrainingInfo
from autolung.training import checkpoint as ckpt
from autolung.training import distributed as ddp
from autolung.training import hardware
from autolung.training.augmentation.recipe import default_pipeline, plan_augmentation
from autolung.training.data.batches import STREAM_TRAIN, STREAM_VAL, BatchBuilder
from autolung.training.data.cases import CaseStore, list_cases
from autolung.training.data.workers import BatchStream
from autolung.training.options import TrainingOptions
from autolung.training.schedule import Schedule, make_optimizer
from autolung.training.splits import fold_cases, load_or_create_splits
from autolung.training.trainer import Trainer, TrainerSetup
from autolung.utils.atomic import atomic_path, remove_partial_files
from autolung.utils.locking import folder_lock

logger = logging.getLogger(__name__)

@dataclass
class FoldInputs:
    """Everything read from disk for one fold."""

    plans: Plans
    configuration: ConfigurationPlan
    case_folder: Path
    train_cases: list[str]
    val_cases: list[str]
    folder: FoldFolder
    in_channels: int
    previous_stage: Path | None = None
    previous_labels: list[int] | None = None

    @property
    def fold_folder(self) -> Path:
        """The fold folder's path (``folder.path``)."""
        return self.folder.path


def load_fold_inputs(data_root: DataRoot, dataset_name: str, configuration: str, fold: int | str,
                     options: TrainingOptions) -> FoldInputs:
    """Read plans, list cases and resolve the fold's train/validation split (creating splits.json).

    Returns:
        The :class:`FoldInputs`.
    """
    plans = Plans.load(data_root.plans_file(dataset_name, options.planner))
    config = plans.configuration(configuration)
    case_folder = data_root.preprocessed_configuration(dataset_name, config.data_name, options.planner)
    case_ids = list_cases(case_folder)
    splits = load_or_create_splits(data_root.splits_file(dataset_name), case_ids)
    train_cases, val_cases = fold_cases(splits, fold, case_ids)
    if not train_cases or not val_cases:
        raise AutolungError(f"fold {fold} has {len(train_cases)} training and {len(val_cases)} validation cases; "
                            "both must be non-empty", path=data_root.splits_file(dataset_name))
    store = CaseStore(case_folder)
    in_channels = int(store.get(train_cases[0]).data.shape[0])
    if in_channels != len(plans.channel_names):
        raise AutolungError(f"preprocessed cases have {in_channels} channels, the plans {len(plans.channel_names)}",
                            path=case_folder)
    folder = data_root.fold_folder(dataset_name, configuration, fold, options.planner)
    inputs = FoldInputs(plans, config, case_folder, train_cases, val_cases, folder, in_channels)
    if config.previous_stage:
        from autolung.preprocessing.previous_stage import previous_stage_labels

        inputs.previous_labels = previous_stage_labels(plans)
        inputs.in_channels += len(inputs.previous_labels)
    return inputs


def prepare_cascade_inputs(data_root: DataRoot, dataset_name: str, inputs: FoldInputs, planner: str) -> None:
    """For a cascade stage: the previous stage's predictions of the fold's cases, on its grid.

    Raises:
        AutolungError: predictions of the previous stage are missing (see ``training.cascade``).
    """
    if inputs.previous_labels is None:
        return
    from autolung.training.cascade import prepare_previous_stage

    inputs.previous_stage = prepare_previous_stage(
        data_root, dataset_name, inputs.plans, inputs.configuration, planner, inputs.case_folder,
        [*inputs.train_cases, *inputs.val_cases], inputs.folder)


def write_run_metadata(data_root: DataRoot, dataset_name: str, inputs: FoldInputs, fold: int | str,
                       options: TrainingOptions) -> None:
    """Copy plans.json (+ fingerprint.json) next to the folds and write ``training_info.json``.

    Returns:
        None.
    """
    output = inputs.fold_folder.parent
    output.mkdir(parents=True, exist_ok=True)
    _copy_atomic(data_root.plans_file(dataset_name, options.planner), output / "plans.json")
    fingerprint = data_root.fingerprint_file(dataset_name)
    if fingerprint.is_file():
        _copy_atomic(fingerprint, output / "fingerprint.json")
    inputs.folder.write_training_info(training_info(inputs, fold, options))


def training_info(inputs: FoldInputs, fold: int | str, options: TrainingOptions) -> TrainingInfo:
    """The fold's ``training_info.json`` (with the output kind: sigmoid regions or softmax classes).

    Returns:
        The :class:`TrainingInfo`.
    """
    return TrainingInfo(configuration=inputs.configuration.name, planner=options.planner, fold=fold,
                        plans_digest=inputs.plans.digest(), in_channels=inputs.in_channels,
                        out_channels=options.output_kind.output_channels(inputs.plans.region_mapping),
                        autolung_version=__version__, **options.output_kind.training_info())


def _copy_atomic(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def class_names(plans: Plans) -> list[str]:
    """A name per pseudo-Dice channel: the label name for single-label regions, else joined names.

    Returns:
        The names.
    """
    by_value = {value: name for name, value in plans.labels.items()}
    return ["+".join(by_value.get(v, str(v)) for v in region) for region in plans.region_mapping.regions]


def _stream_factory(builder: BatchBuilder, workers: int) -> object:
    def start(index: int) -> BatchStream:
        return BatchStream(builder, start=index, num_workers=workers)
    return start


def build_setup(inputs: FoldInputs, options: TrainingOptions, context: ddp.DistributedContext,
                device: torch.device, fold: int | str) -> TrainerSetup:
    """Network, loss, optimiser, schedule and batch streams for one process.

    Returns:
        The :class:`TrainerSetup`.
    """
    config, plans, kind = inputs.configuration, inputs.plans, options.output_kind
    network = _build_network(config, inputs.in_channels, kind.output_channels(plans.region_mapping))
    channels_last = hardware.use_channels_last(device, config.dim, options.channels_last)
    network = network.to(device)
    if channels_last:
        network = network.to(memory_format=torch.channels_last_3d if config.dim == 3 else torch.channels_last)
    module = network
    if context.enabled:
        network = nn.parallel.DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None)
    if options.compile:
        network = torch.compile(network)
    batch_size = options.batch_size or config.batch_size
    forced = ddp.split_batch(batch_size, options.oversample_foreground, context.rank, context.world_size)
    workers = options.num_workers if options.num_workers is not None else hardware.default_num_workers(device)
    train_builder, val_builder = _builders(inputs, options, forced, context.rank)
    return TrainerSetup(
        network=network, module=module,
        loss=kind.build_loss(has_ignore=plans.region_mapping.ignore_label is not None,
                             deep_supervision=options.deep_supervision),
        optimizer=make_optimizer(module.parameters(), options.initial_lr, options.momentum, options.weight_decay),
        schedule=Schedule(options.epochs, options.iters_per_epoch, options.time_budget_s, options.initial_lr,
                          options.poly_exponent, options.warmup_fraction),
        train_stream=_stream_factory(train_builder, workers),
        val_stream=_stream_factory(val_builder, min(workers, 1) if options.val_iters > 0 else 0),
        device=device, amp_dtype=hardware.autocast_dtype(device, options.precision), channels_last=channels_last,
        output_kind=kind, class_names=class_names(plans), folder=inputs.fold_folder,
        header={"plans_digest": plans.digest(), "configuration": config.name, "fold": fold,
                "planner": options.planner, "in_channels": inputs.in_channels,
                "out_channels": kind.output_channels(plans.region_mapping), "loss": kind.loss},
        context=context, options=options, has_ignore=plans.region_mapping.ignore_label is not None)


def _build_network(config: ConfigurationPlan, in_channels: int, out_channels: int) -> nn.Module:
    from autolung.network import build_network

    return build_network(config.architecture, in_channels, out_channels, deep_supervision=True)


def _builders(inputs: FoldInputs, options: TrainingOptions, forced: list[bool],
              rank: int) -> tuple[BatchBuilder, BatchBuilder]:
    config = inputs.configuration
    augmentation = plan_augmentation(config.patch_size, config.spacing)
    store = CaseStore(inputs.case_folder, previous_stage=inputs.previous_stage, previous_labels=inputs.previous_labels)
    regions, kind = inputs.plans.region_mapping, options.output_kind
    train = BatchBuilder(store, inputs.train_cases, augmentation.patch_size, augmentation.sample_size, forced,
                         regions, kind, default_pipeline(augmentation, options.augmentation_strength), options.seed,
                         STREAM_TRAIN, rank)
    val = BatchBuilder(store, inputs.val_cases, augmentation.patch_size, augmentation.patch_size, forced,
                       regions, kind, None, options.seed, STREAM_VAL, rank)
    logger.info("patch %s sampled at %s%s; batch %d on this rank (%d forced foreground)",
                augmentation.patch_size, augmentation.sample_size,
                " (in-plane augmentation)" if augmentation.in_plane_axis is not None else "",
                len(forced), sum(forced))
    return train, val


def _resume(trainer: Trainer, inputs: FoldInputs, options: TrainingOptions) -> None:
    latest = inputs.folder.latest_checkpoint
    if not options.resume:
        if latest.exists():
            logger.warning("%s exists; starting from scratch (set `resume` to continue it)", latest)
        return
    found = resume_checkpoint(inputs.folder, inputs.plans.digest())
    if found is None:
        logger.warning("`resume`: no checkpoint in %s, starting from scratch", inputs.fold_folder)
        return
    path, payload = found
    trainer.load_state_dict(payload)
    logger.info("resumed from %s at epoch %d", path, trainer.state.epoch)


def resume_checkpoint(fold_folder: FoldFolder, plans_digest: str) -> tuple[Path, dict] | None:
    """The checkpoint ``--continue`` resumes from: ``checkpoint_latest.pt``, or, when that one is
    unreadable (a disk fault; SIGKILL cannot cause it, writes are atomic), the newest readable of
    ``checkpoint_final.pt`` and ``checkpoint_best.pt``, with a warning naming the fallback.

    Args:
        fold_folder: the fold folder.
        plans_digest: the current plans' digest; a checkpoint made with other plans is refused.

    Returns:
        ``(path, payload)``, or None when the folder holds no checkpoint at all.

    Raises:
        AutolungError: a checkpoint of other plans, or checkpoints that all fail to load.
    """
    candidates = [fold_folder.latest_checkpoint, fold_folder.final_checkpoint, fold_folder.best_checkpoint]
    present = [path for path in candidates if path.exists()]
    if not present:
        return None
    # On the CPU first: RNG states must stay CPU tensors; weights and optimiser state are copied
    # onto the parameters' device by load_state_dict.
    loaded, failures = [], []
    for path in present:
        try:
            loaded.append((path, ckpt.load_checkpoint(path, map_location="cpu")))
        except AutolungError as exc:
            failures.append(f"{path.name}: {exc.problem}")
            continue
        if path == fold_folder.latest_checkpoint:
            break
    if not loaded:
        raise AutolungError("no checkpoint can be loaded (" + "; ".join(failures) + "); cannot continue",
                            path=fold_folder.path)
    path, payload = max(loaded, key=lambda item: int(item[1].get("epoch", -1)))
    if payload.get("plans_digest") != plans_digest:
        raise AutolungError("checkpoint was trained with different plans (digest mismatch); cannot continue",
                            path=path)
    if failures:
        logger.warning("%s; falling back to %s (epoch %d): the epochs after it are trained again",
                       "; ".join(failures), path.name, int(payload.get("epoch", 0)))
    return path, payload


def train_fold(data_root: DataRoot, dataset_name: str, configuration: str, fold: int | str,
               options: TrainingOptions, distributed: ddp.DistributedContext | None = None,
               init_method: str | None = None, progress: ProgressReporter | None = None) -> Path:
    """Train one fold of one configuration.

    Args:
        data_root: the data root.
        dataset_name: dataset folder name (under preprocessed/).
        configuration: e.g. "3d_fullres" or "2d".
        fold: 0..4 or "all".
        options: training options.
        distributed: this process's rank when already part of a DDP launch (torchrun or spawn).
        init_method: process-group address for spawned ranks; None = torchrun's environment.
        progress: receives each epoch's iterations (main rank only; ranks spawned here for
            ``num_gpus > 1`` report nothing, a reporter does not cross processes). None: nothing.

    Returns:
        The fold folder.
    """
    options = replace(options, planner=planner_in_use(
        options.planner, planners_with_plans(data_root, dataset_name), dataset_name))
    if distributed is None and options.num_gpus > 1:
        inputs = load_fold_inputs(data_root, dataset_name, configuration, fold, options)
        ddp.spawn(_spawned_rank, options.num_gpus, (data_root, dataset_name, configuration, fold, options))
        return inputs.fold_folder
    context = distributed or ddp.DistributedContext()
    inputs = load_fold_inputs(data_root, dataset_name, configuration, fold, options)
    options = with_resolved_loss(with_planned_budget(options, inputs.configuration), inputs)
    device = _rank_device(hardware.resolve_device(options.device), context)
    # Under DDP every rank writes the same arrays, each atomically.
    prepare_cascade_inputs(data_root, dataset_name, inputs, options.planner)
    if options.validation_only:
        return _validate_trained_fold(inputs, data_root, dataset_name, device, options)
    if not options.checkpointing:
        logger.warning("checkpointing is off: this run writes no checkpoint, so it can be neither resumed nor "
                       "used for prediction")
    lock = folder_lock(inputs.fold_folder, "training") if context.is_main else contextlib.nullcontext()
    with lock:
        if context.is_main:
            remove_partial_files(inputs.fold_folder)
            write_run_metadata(data_root, dataset_name, inputs, fold, options)
        ddp.init_process_group(context, device, init_method)
        try:
            trainer = _prepare(inputs, options, context, device, fold, progress)
            trainer.fit()
            if context.is_main and options.final_validation:
                from autolung.training.validation import validate_fold

                network = trainer.setup.module
                if options.validation_checkpoint == "best":
                    network = _network_from_checkpoint(inputs, options, device, ckpt.BEST)
                started = time.perf_counter()
                validate_fold(network, inputs, data_root, dataset_name, device, options)
                logger.info("final validation took %.0f s%s", time.perf_counter() - started,
                            " (after the training budget, which covers training only)"
                            if options.time_budget_s is not None else "")
        finally:
            ddp.destroy_process_group()
    return inputs.fold_folder


def _network_from_checkpoint(inputs: FoldInputs, options: TrainingOptions, device: torch.device,
                             name: str) -> nn.Module:
    """The fold's network with the weights of checkpoint ``name``, on ``device``.

    Raises:
        AutolungError: no such checkpoint, or one made with other plans.
    """
    path = inputs.folder.checkpoint(name)
    if not path.is_file():
        raise AutolungError(f"no {name}: train this fold first (with checkpointing on)", path=path)
    payload = ckpt.load_checkpoint(path, map_location="cpu")
    if payload.get("plans_digest") != inputs.plans.digest():
        raise AutolungError("checkpoint was trained with different plans (digest mismatch)", path=path)
    network = _build_network(inputs.configuration, inputs.in_channels,
                             options.output_kind.output_channels(inputs.plans.region_mapping))
    network.load_state_dict(payload["network_weights"])
    logger.info("validating with %s (epoch %s)", path, payload.get("epoch"))
    return network.to(device)


def _validate_trained_fold(inputs: FoldInputs, data_root: DataRoot, dataset_name: str, device: torch.device,
                           options: TrainingOptions) -> Path:
    """Run the final validation of a trained fold again, from its final or best checkpoint."""
    from autolung.training.validation import validate_fold

    if inputs.folder.training_info_file.is_file():
        # The fold's own output kind decides its output layer, whatever this call's default is.
        kind = output_kind_from_training_info(inputs.folder.read_training_info().to_json(),
                                              inputs.folder.training_info_file, default=options.output_kind)
        options = replace(options, loss=kind.loss)
    name = ckpt.BEST if options.validation_checkpoint == "best" else ckpt.FINAL
    with folder_lock(inputs.fold_folder, "validation"):
        network = _network_from_checkpoint(inputs, options, device, name)
        validate_fold(network, inputs, data_root, dataset_name, device, options)
    return inputs.fold_folder


def with_planned_budget(options: TrainingOptions, configuration: ConfigurationPlan) -> TrainingOptions:
    """``options`` with the budget the plan was sized for (planner "auto") when none was given.

    Returns:
        The options (a copy when changed).
    """
    from autolung.planning.run import planned_time_budget

    planned = planned_time_budget(configuration)
    if planned is None:
        return options
    if options.time_budget_s is not None:
        if not planned / 2 <= options.time_budget_s <= planned * 2:
            logger.warning("training for %.0f s with a plan sized for %.0f s: the plan is not the one that trains "
                           "best in this budget; plan again with time_budget_s=%.0f", options.time_budget_s, planned,
                           options.time_budget_s)
        return options
    logger.info("no time budget given: training for the %.0f s the plan was sized for", planned)
    return replace(options, time_budget_s=planned)


def with_resolved_loss(options: TrainingOptions, inputs: FoldInputs) -> TrainingOptions:
    """``options`` with ``loss`` "auto" replaced by the kind this fold trains with.

    A fold that already has a ``training_info.json`` and is resumed or re-validated keeps the kind
    it was trained with; otherwise the plans' labels choose (:func:`default_output_kind`).

    Returns:
        The options (a copy when changed).
    """
    if options.loss != AUTO_LOSS:
        return options
    info_file = inputs.folder.training_info_file
    if (options.resume or options.validation_only) and info_file.is_file():
        kind = output_kind_from_training_info(inputs.folder.read_training_info().to_json(), info_file,
                                              default=SIGMOID_REGIONS)
        reason = "the kind this fold was trained with"
    else:
        kind, reason = default_output_kind(inputs.plans.region_mapping)
    logger.info("loss %s (%s): %s", kind.loss, kind.name, reason)
    return replace(options, loss=kind.loss)


def _prepare(inputs: FoldInputs, options: TrainingOptions, context: ddp.DistributedContext,
             device: torch.device, fold: int | str, progress: ProgressReporter | None = None) -> Trainer:
    workers = options.num_workers if options.num_workers is not None else hardware.default_num_workers(device)
    threads = options.num_threads
    if threads is None and device.type == "cpu":
        # DDP ranks on one CPU share its cores.
        threads = max(1, hardware.usable_cpu_count() // context.world_size)
    used = hardware.configure_threads(device, threads)
    hardware.seed_everything(options.seed, options.deterministic)
    setup = build_setup(inputs, options, context, device, fold)
    if options.pretrained_weights:
        from autolung.training.pretrained import load_pretrained_weights

        report = load_pretrained_weights(setup.module, options.pretrained_weights)
        if context.is_main:
            folder = inputs.folder
            info = folder.read_training_info() if folder.training_info_file.is_file() else TrainingInfo()
            folder.write_training_info(info.with_extra(report))
    trainer = Trainer(setup, progress)
    _resume(trainer, inputs, options)
    logger.info("training %s fold %s on %s: %d train / %d val cases, %d epochs x %d iterations, %s, "
                "%d threads, %d data workers", inputs.configuration.name, fold, device, len(inputs.train_cases),
                len(inputs.val_cases), options.epochs, options.iters_per_epoch,
                setup.amp_dtype or "float32", used, workers)
    logger.info(budget_statement(options, len(inputs.val_cases)))
    return trainer


def budget_statement(options: TrainingOptions, validation_cases: int) -> str:
    """What the time budget covers, said before training starts.

    Args:
        options: the training options.
        validation_cases: cases the final validation will predict.

    Returns:
        One log line.
    """
    validation = (f"the final validation of {validation_cases} case(s) (prediction mode {options.validation_mode}) "
                  "runs after it" if options.final_validation and validation_cases else "no final validation")
    if options.time_budget_s is None:
        return f"no time budget: {options.epochs} epochs, then {validation}"
    return f"time budget {options.time_budget_s:.0f} s covers training only; {validation}"


def _rank_device(device: torch.device, context: ddp.DistributedContext) -> torch.device:
    if device.type == "cuda" and context.enabled:
        torch.cuda.set_device(context.local_rank)
        return torch.device("cuda", context.local_rank)
    return device


def _spawned_rank(rank: int, world_size: int, init_method: str, data_root: DataRoot, dataset_name: str,
                  configuration: str, fold: int | str, options: TrainingOptions) -> None:
    logging.basicConfig(level=logging.INFO, format=f"%(levelname)s rank{rank} %(name)s: %(message)s")
    context = ddp.DistributedContext(rank=rank, world_size=world_size, local_rank=rank)
    train_fold(data_root, dataset_name, configuration, fold, replace(options, num_gpus=1), distributed=context,
               init_method=init_method)
