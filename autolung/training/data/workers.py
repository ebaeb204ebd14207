"""Background batch production in worker processes, with failures reported, not hidden.

Worker ``k`` of ``n`` builds batches ``start + k``, ``start + k + n``, ... and puts them in its
own bounded queue; the consumer reads the queues round-robin, so the batch order is the same
for any number of workers (and for 0 workers, where batches are built in-process).

A worker that raises sends its formatted traceback before exiting; the consumer re-raises it as
:class:`DataWorkerError` with that traceback. A worker that dies without a word (killed, out of
memory) is detected by polling its liveness while waiting, so the consumer never hangs.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import sys
import traceback
from typing import Any, Protocol

from autolung.errors import AutolungError

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
PREFETCH_PER_WORKER = 2


class DataWorkerError(AutolungError):
    """A background data worker failed; the message holds the worker's own traceback."""


class Builder(Protocol):
    def build(self, index: int) -> Any: ...


def _put_while_parent_lives(out: Any, item: tuple, parent: int) -> bool:
    # A parent killed with SIGKILL/SIGTERM cannot reap us; notice it instead of blocking forever.
    while True:
        try:
            out.put(item, timeout=POLL_SECONDS)
            return True
        except queue.Full:
            if os.getppid() != parent:
                return False


def _worker_loop(builder: Builder, start: int, step: int, out: Any, worker: int, parent: int) -> None:
    index = start
    try:
        while _put_while_parent_lives(out, ("ok", index, builder.build(index)), parent):
            index += step
    except KeyboardInterrupt:
        return
    except BaseException:  # report everything: the consumer decides what to do
        out.put(("error", index, f"data worker {worker} failed while building batch {index}:\n"
                                 f"{traceback.format_exc()}"))
        out.close()
        out.join_thread()


def _context() -> mp.context.BaseContext:
    # fork starts in milliseconds and shares the memory maps; workers never touch torch.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return mp.get_context(method)


class BatchStream:
    """An endless, ordered stream of batches ``start, start + 1, ...``.

    Args:
        builder: object with ``build(index)`` (picklable when the spawn start method is used).
        start: first batch index (the number already consumed, on resume).
        num_workers: background processes; 0 builds in the calling process.
    """

    def __init__(self, builder: Builder, start: int = 0, num_workers: int = 0) -> None:
        self.builder = builder
        self.next_index = start
        self._start = start
        self.num_workers = num_workers
        self._processes: list[mp.Process] = []
        self._queues: list[Any] = []
        if num_workers > 0:
            self._start_workers(start)

    def _start_workers(self, start: int) -> None:
        context = _context()
        for worker in range(self.num_workers):
            out = context.Queue(maxsize=PREFETCH_PER_WORKER)
            process = context.Process(target=_worker_loop, name=f"autolung-data-{worker}",
                                      args=(self.builder, start + worker, self.num_workers, out, worker,
                                            os.getpid()),
                                      daemon=True)
            process.start()
            self._processes.append(process)
            self._queues.append(out)

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> Any:
        index = self.next_index
        if self.num_workers == 0:
            batch = self.builder.build(index)
        else:
            batch = self._receive(index)
        self.next_index += 1
        return batch

    def _receive(self, index: int) -> Any:
        worker = (index - self._start) % self.num_workers
        process, source = self._processes[worker], self._queues[worker]
        while True:
            try:
                status, got, payload = source.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if not process.is_alive():
                    self.close()
                    raise DataWorkerError(f"data worker {worker} died without a report "
                                          f"(exit code {process.exitcode}; killed or out of memory?)") from None
                continue
            if status == "error":
                self.close()
                raise DataWorkerError(payload)
            if got != index:  # cannot happen with round-robin reading; guard against silent reordering
                self.close()
                raise DataWorkerError(f"data worker {worker} delivered batch {got}, expected {index}")
            return payload

    def close(self) -> None:
        """Stop and reap the workers (idempotent).

        Returns:
            None.
        """
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join(timeout=5)
        for source in self._queues:
            source.cancel_join_thread()
            source.close()
        self._processes, self._queues = [], []

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing sensible left to do
            pass
