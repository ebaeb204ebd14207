"""Preprocess a whole dataset: parallel, resumable, every file written atomically.

Each worker task is one case with all its pending configurations: the case is read once, and a
configuration whose grid and normalization equal an already processed one (typically 2d and
3d_fullres when the slice spacing is the target's) gets hard links to the same arrays instead of
being computed again.

Memory: a worker holds one case: its image (4 bytes per voxel and channel, read as float32), the
normalized crop (same size), the resampled output and about two axis-pass temporaries, so
roughly ``num_processes * 16 * C * voxels`` bytes at the peak; for 512x512x130 CT and two
workers about 1.1 GB. The parent holds only case lists.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autolung.dataset.layout import load_dataset, read_case
from autolung.errors import AutolungError, InvalidInputError, InvalidPlansError
from autolung.paths import DataRoot
from autolung.planning.plans import ConfigurationPlan, Plans
from autolung.planning.registry import planner_in_use, planners_with_plans
from autolung.preprocessing.case import preprocess_case, resampling_setup
from autolung.preprocessing.resampling import axis_orders
from autolung.progress import ProgressReporter, reporter, track
from autolung.preprocessing.storage import CasePaths, is_case_complete, link_case, write_case
from autolung.utils.atomic import remove_partial_files
from autolung.utils.locking import folder_lock

logger = logging.getLogger(__name__)

# Names a planner may leave out (3d_lowres only exists for large images): asking for one of
# them is a warning, any other unknown name an error.
STANDARD_CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres")


class PreprocessingError(AutolungError):
    """A case could not be preprocessed; the message names the case, the log has the traceback."""


@dataclass
class PreprocessSummary:
    """What :func:`preprocess_dataset` did, per configuration."""

    processed: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    partial_files_removed: int = 0
    folders: dict[str, Path] = field(default_factory=dict)  # where each configuration's cases are


@dataclass(frozen=True)
class _Task:
    case: Any
    configurations: tuple[str, ...]


def select_configurations(plans: Plans, requested: Iterable[str] | None) -> list[str]:
    """The configurations to preprocess: all planned ones by default.

    Args:
        plans: the dataset's plans.
        requested: names asked for, or None for all planned.

    Returns:
        Planned names in the requested order, a cascade replaced by the configuration whose cases
        it reads (3d_fullres); standard names that are not planned are skipped with a warning
        (the planner decided they are not needed).

    Raises:
        InvalidPlansError: for a name that is neither planned nor a standard configuration.
    """
    # A cascade reads the preprocessed cases of its data configuration (3d_fullres).
    requested = list(requested) if requested else list(plans.configurations)
    chosen: list[str] = []
    for name in requested:
        if name in plans.configurations:
            data_name = plans.configurations[name].data_name
            if data_name not in chosen:
                chosen.append(data_name)
        elif name in STANDARD_CONFIGURATIONS:
            logger.warning("configuration %s is not planned for %s; skipped", name, plans.dataset_name)
        else:
            raise InvalidPlansError(f"configuration {name!r} is not planned; planned: "
                                    f"{', '.join(plans.configurations)}")
    return chosen


def preprocess_dataset(dataset_folder: str | Path, data_root: DataRoot, configurations: Iterable[str] | None = None,
                       num_processes: int = 2, planner: str | None = None,
                       progress: ProgressReporter | None = None) -> PreprocessSummary:
    """Preprocess every training case of a dataset for the chosen configurations.

    Args:
        dataset_folder: raw dataset folder.
        data_root: data root; plans are read from ``preprocessed/<Dataset>/``.
        configurations: configuration names, or None for all planned.
        num_processes: worker processes (1 runs in this process).
        planner: planner name (selects ``plans_<planner>.json`` and the output folders); None: the
            dataset's only plans, else "auto".
        progress: receives the "preprocess <Dataset>" task, one step per case (default: nothing).

    Returns:
        Which cases were processed and which skipped, per configuration.

    Raises:
        InvalidPlansError: when the plans are missing or a configuration is unknown.
        LockedError: when another live run is preprocessing the same configuration.
        PreprocessingError: when a case fails (its traceback is logged).
    """
    dataset_folder = Path(dataset_folder)
    name = dataset_folder.name
    planner = planner_in_use(planner, planners_with_plans(data_root, name), name)
    plans_file = data_root.plans_file(name, planner)
    if not plans_file.is_file():
        raise InvalidPlansError("no plans yet; run `autolung plan` (or `autolung plan_and_preprocess`) first",
                                path=plans_file)
    plans = Plans.load(plans_file)
    chosen = select_configurations(plans, configurations)
    spec = load_dataset(dataset_folder)
    data_root.record_dataset_source(dataset_folder)
    folders = {c: data_root.preprocessed_configuration(name, c, planner) for c in chosen}
    summary = PreprocessSummary({c: [] for c in chosen}, {c: [] for c in chosen}, folders=dict(folders))
    with contextlib.ExitStack() as locks:
        # Locked first: the partial files removed below could otherwise be another run's live writes.
        for folder in folders.values():
            locks.enter_context(folder_lock(folder, "preprocess"))
            summary.partial_files_removed += remove_partial_files(folder)
        if summary.partial_files_removed:
            logger.info("removed %d partial file(s) of an interrupted run", summary.partial_files_removed)
        tasks = _pending_tasks(spec.cases, folders, plans.digest(), summary)
        logger.info("preprocessing %d case(s) of %s for %s (%d already done)", len(tasks), name, ", ".join(chosen),
                    sum(len(v) for v in summary.skipped.values()))
        work = _execute(spec, plans, folders, tasks, num_processes)
        try:
            for case_id, done in track(work, reporter(progress), f"preprocess {name}", len(tasks)):
                for configuration in done:
                    summary.processed[configuration].append(case_id)
        except BaseException:
            # The pool is shut down by now; a worker it terminated mid-write leaves its temporary file.
            for folder in folders.values():
                remove_partial_files(folder)
            raise
    for case_ids in summary.processed.values():
        case_ids.sort()
    return summary


def _pending_tasks(cases: list[Any], folders: dict[str, Path], digest: str, summary: PreprocessSummary) -> list[_Task]:
    tasks = []
    for case in cases:
        pending = []
        for configuration, folder in folders.items():
            if is_case_complete(folder, case.case_id, digest, needs_seg=case.label is not None):
                summary.skipped[configuration].append(case.case_id)
            else:
                pending.append(configuration)
        if pending:
            tasks.append(_Task(case, tuple(pending)))
    # Largest first, so one big case does not start last and keep the others idle.
    tasks.sort(key=lambda t: -_file_size(t.case.images))
    return tasks


def _file_size(paths: Iterable[Path]) -> int:
    total = 0
    for path in paths:
        try:
            total += os.stat(path).st_size
        except OSError:
            pass
    return total


def _execute(spec: Any, plans: Plans, folders: dict[str, Path], tasks: list[_Task],
             num_processes: int) -> Iterator[tuple[str, list[str]]]:
    """Start the work now; return an iterator of ``(case_id, configurations written)`` as tasks finish.

    The pool is created and fed here, before any progress-bar thread exists, so that forking the
    workers (fast: they inherit the imported modules, and no script re-import as with spawn) never
    copies a lock held by another thread.
    """
    if num_processes <= 1 or len(tasks) <= 1:
        return (_run_task(lambda t=task: preprocess_one_case(spec, t.case, plans, t.configurations, folders), task)
                for task in tasks)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    pool = ProcessPoolExecutor(max_workers=min(num_processes, len(tasks)), mp_context=context)
    futures: dict[Future, _Task] = {
        pool.submit(preprocess_one_case, spec, task.case, plans, task.configurations, folders): task
        for task in tasks}
    return _collect(pool, futures)


def _collect(pool: ProcessPoolExecutor, futures: dict[Future, _Task]) -> Iterator[tuple[str, list[str]]]:
    try:
        for future in as_completed(futures):
            if not future.cancelled() and isinstance(future.exception(), BrokenProcessPool):
                _raise_worker_died(pool, futures)
            yield _run_task(future.result, futures[future])
    finally:
        # On a failure (or an abandoned iterator) drop the queued cases instead of finishing them.
        pool.shutdown(wait=True, cancel_futures=True)


def _raise_worker_died(pool: ProcessPoolExecutor, futures: dict[Future, _Task]) -> None:
    """A worker vanished (killed, out of memory, a crash in native code): every unfinished future
    fails the same way, so name the cases that were in flight (the first unfinished, in order)."""
    wait(futures, timeout=10)  # the pool fails every unfinished future; let it finish doing so
    broken = [task for future, task in futures.items()
              if future.done() and not future.cancelled() and isinstance(future.exception(), BrokenProcessPool)]
    in_flight = broken[:max(1, getattr(pool, "_max_workers", 1))]
    names = ", ".join(task.case.case_id for task in in_flight)
    logger.error("a preprocessing worker process died abruptly while the cases %s were in flight", names)
    raise PreprocessingError(f"a worker process died abruptly (killed, out of memory, or a crash in native code) "
                             f"while preprocessing one of: {names}; rerun with `num_processes` 1 to see which",
                             path=(in_flight[0].case.images or [None])[0])


def _run_task(call: Callable[[], list[str]], task: _Task) -> tuple[str, list[str]]:
    """Run (or collect) one task, turning a failure into a PreprocessingError naming the case."""
    try:
        return task.case.case_id, call()
    except Exception as exc:
        remote = getattr(exc.__cause__, "tb", None)
        logger.error("case %s failed:\n%s", task.case.case_id, remote or traceback.format_exc())
        problem = exc.problem if isinstance(exc, AutolungError) else f"{type(exc).__name__}: {exc}"
        where = exc.path if isinstance(exc, AutolungError) and exc.path else (task.case.images or [None])[0]
        raise PreprocessingError(f"preprocessing case {task.case.case_id!r} failed: {problem}", path=where) from exc


def preprocess_one_case(spec: Any, case: Any, plans: Plans, configurations: Iterable[str],
                        folders: dict[str, Path]) -> list[str]:
    """Worker: read one case once and write it for each configuration.

    Args:
        spec: the dataset spec (``load_dataset``).
        case: one entry of ``spec.cases``.
        plans: the plans.
        configurations: configuration names to write.
        folders: output folder per configuration name.

    Returns:
        The configurations written.
    """
    image, label, geometry = read_case(spec, case)
    if label is None and case.label is not None:
        raise InvalidInputError("the label file could not be read", path=case.label)
    written: dict[tuple, CasePaths] = {}
    digest = plans.digest()  # once per case, not once per configuration
    done = []
    for name in configurations:
        configuration = plans.configuration(name)
        key = _grid_key(configuration, geometry.spacing, image)
        if key in written:
            # Same grid and normalization: the same three files, as hard links.
            link_case(written[key], folders[name], case.case_id)
        else:
            data, seg, properties = preprocess_case(image, label, geometry, plans, name, case_id=case.case_id,
                                                    plans_digest=digest)
            written[key] = write_case(folders[name], case.case_id, data, seg, properties)
            del data, seg
        done.append(name)
    return done


def _grid_key(configuration: ConfigurationPlan, spacing: Any, image: Any) -> tuple:
    """Everything that decides the preprocessed arrays of a configuration, for reuse across configurations.

    Orders count only along axes whose length changes, so a 2d configuration and a 3d one with
    the same target grid (slice axis untouched in both) share their arrays.
    """
    shape = list(image.shape[1:])
    new_shape, target, axis = resampling_setup(configuration, list(spacing), shape)
    image_orders = axis_orders(axis, configuration.resample_order_image, configuration.resample_order_image_out_of_plane)
    label_orders = axis_orders(axis, 1, configuration.resample_order_labels_out_of_plane)
    changed = [new != old for new, old in zip(new_shape, shape)]
    return (tuple(new_shape), tuple(round(t, 6) for t in target),
            tuple(o if c else None for o, c in zip(image_orders, changed)),
            tuple(o if c else None for o, c in zip(label_orders, changed)),
            repr([asdict(n) | {"reason": ""} for n in configuration.normalization]))
