"""Overlapping the stages of prediction (nnU-Net's ``-npp``/``-nps``).

Three stages per case: *prepare* (lock, read, preprocess), *compute* (the network, in the calling
thread, so one device is driven by one thread) and *export* (restore, postprocess, write). With
``prepare_workers`` > 0 the next cases are prepared in background threads while the network runs;
with ``export_workers`` > 0 a case is exported in the background while the next one is computed.
Threads, not processes: reading (SimpleITK), resampling (scipy) and writing release the GIL, and
nothing is pickled. Queues are bounded (``prepare_workers`` cases ahead, ``export_workers`` cases
behind), so memory stays at a few cases. The first error stops the run: cases prepared ahead are
discarded (their locks released), exports already running finish, and the error names the case.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from autolung.errors import AutolungError

logger = logging.getLogger(__name__)

Case = TypeVar("Case")
Item = TypeVar("Item")


class CaseStages(Generic[Case, Item]):
    """The three stages for one kind of case; override all four methods.

    ``prepare`` returns None for a case that needs no work (skipped, or held by another process).
    """

    def case_id(self, case: Case) -> str:
        raise NotImplementedError

    def prepare(self, case: Case) -> Item | None:
        raise NotImplementedError

    def compute(self, item: Item) -> Any:
        raise NotImplementedError

    def export(self, item: Item, result: Any) -> Any:
        raise NotImplementedError

    def discard(self, item: Item) -> None:
        """Release what ``prepare`` took (locks); called once an item is exported or dropped, so
        it must be safe to call twice."""


def _named(stage: str, case_id: str, exc: BaseException) -> BaseException:
    """``exc`` when it already names its file (autolung errors), else an error naming the case."""
    if isinstance(exc, AutolungError) or not isinstance(exc, Exception):
        logger.error("%s: %s failed", case_id, stage)
        return exc
    error = AutolungError(f"case {case_id}: {stage} failed ({type(exc).__name__}: {exc})")
    error.__cause__ = exc
    return error


def run_stages(cases: Sequence[Case], stages: CaseStages[Case, Item], prepare_workers: int, export_workers: int,
               on_done: Callable[[Case, Any], None]) -> None:
    """Run every case through the stages, overlapped as the worker counts allow.

    Args:
        cases: the cases, in order.
        stages: the stage functions.
        prepare_workers: background threads preparing the next cases (0: prepare in this thread).
        export_workers: background threads exporting finished cases (0: export in this thread).
        on_done: called in this thread, in case order, with each case and its export result
            (None for a case ``prepare`` skipped).

    Raises:
        The first error of any stage: autolung errors as raised (they name their file), others
        as an :class:`AutolungError` naming the case and the stage.
    """
    prepare_pool = ThreadPoolExecutor(prepare_workers, thread_name_prefix="prepare") if prepare_workers else None
    export_pool = ThreadPoolExecutor(export_workers, thread_name_prefix="export") if export_workers else None
    ahead: deque[tuple[Case, Future]] = deque()
    behind: deque[tuple[Case, Item, Future]] = deque()
    pending = iter(cases)

    def submit_prepare() -> None:
        case = next(pending, None)
        if case is not None:
            ahead.append((case, prepare_pool.submit(stages.prepare, case)))

    try:
        if prepare_pool is not None:
            for _ in range(prepare_workers):
                submit_prepare()
        for case in cases:
            if prepare_pool is not None:
                _, future = ahead.popleft()
                submit_prepare()
                item = _result(future, "preparation", stages.case_id(case))
            else:
                item = _call(stages.prepare, "preparation", stages.case_id(case), case)
            if item is None:
                _drain(behind, stages, on_done, keep=export_workers)
                on_done(case, None)
                continue
            try:
                result = _call(stages.compute, "prediction", stages.case_id(case), item)
            except BaseException:
                stages.discard(item)
                raise
            if export_pool is None:
                try:
                    on_done(case, _call(stages.export, "export", stages.case_id(case), item, result))
                finally:
                    stages.discard(item)
                continue
            behind.append((case, item, export_pool.submit(stages.export, item, result)))
            del result
            _drain(behind, stages, on_done, keep=export_workers - 1)
        _drain(behind, stages, on_done, keep=0)
    except BaseException:
        for _, future in ahead:
            if not future.cancel():
                try:
                    item = future.result()
                except BaseException:  # noqa: BLE001 - the first error is the one raised
                    continue
                if item is not None:
                    stages.discard(item)
        for _, item, future in behind:
            future.exception()  # let running exports finish: no half-written case is left behind
            stages.discard(item)
        raise
    finally:
        for pool in (prepare_pool, export_pool):
            if pool is not None:
                pool.shutdown(wait=True)


def _drain(behind: deque, stages: CaseStages, on_done: Callable, keep: int) -> None:
    """Wait for exports until at most ``keep`` run (in case order)."""
    while len(behind) > max(keep, 0):
        case, item, future = behind.popleft()
        try:
            result = _result(future, "export", stages.case_id(case))
        finally:
            stages.discard(item)
        on_done(case, result)


def _call(function: Callable, stage: str, case_id: str, *args: Any) -> Any:
    try:
        return function(*args)
    except BaseException as exc:
        raise _named(stage, case_id, exc)  # noqa: B904 - _named keeps the original as the cause


def _result(future: Future, stage: str, case_id: str) -> Any:
    try:
        return future.result()
    except BaseException as exc:
        raise _named(stage, case_id, exc)  # noqa: B904 - _named keeps the original as the cause
