"""Running a batch: the ``local`` engine (a pool of worker processes) and the ``ray`` engine
(a pool of Ray actors), and :func:`run_batch`, which plans, dispatches, journals and
indexes.

Both engines keep one :class:`~emoapp.batch.jobs.ItemWorker` per worker, so the models
load once per worker, never per file, and hand it one item at a time (a worker is never
given a second item before the first is back, so when a worker dies the engine knows which
item it held). A worker that dies (killed, out of memory, a crash in native code) is
replaced and its item tried once more; an item on which a worker dies twice is recorded as
failed. That holds wherever it dies: while analysing an item, or between two items (the
next item cannot be handed over: it goes back to the queue, not counted as an attempt,
and the worker is replaced). A failing item is not a dying worker: :meth:`ItemWorker.run`
turns any error into the item's ``failed`` record.

Before an item is handed to a worker, ``on_start`` is called with it (in the calling
thread): :func:`run_batch` journals that the item is in progress, so that a timeline the
worker then renames into place is never taken for one an earlier run finished (see
:mod:`emoapp.batch.jobs`, "the journal first").

``local``: worker processes started with ``spawn`` (a fresh interpreter: no torch or
OpenMP state inherited from the parent), each owning one end of a pipe; the parent waits
on the pipes and the processes' sentinels together. Workers ignore SIGINT: Ctrl-C reaches
the parent, which stops them, so finished items stay finished (and journaled) and the
item in progress leaves only a ``.part`` file that the next run overwrites.

``ray``: ``ray`` is imported only here, only for this engine. :func:`run_ray` connects to
``address`` (a running cluster, or ``auto``) or starts a local Ray with this machine's CPUs
(and stops it at the end), then starts one actor per worker with ``num_cpus`` CPUs and
``num_gpus`` (a fraction: several actors share one GPU). Inputs and ``--out`` must be paths
every node can read and write (a shared file system), and emoapp must be installed on every
node, with its models where ``--models-dir`` (or the Hugging Face cache) says.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoapp.batch.jobs import (
    DONE,
    FAILED,
    FINISHED,
    PART_SUFFIX,
    THREAD_VARIABLES,
    TIMELINES,
    TRUNCATED,
    BatchItem,
    BatchJob,
    ItemWorker,
    Journal,
    already_done,
    died_record,
    index_rows,
    read_journal,
    started_record,
    write_index,
)
from emoapp.core.errors import EmoappError

ENGINES = ("local", "ray")
MAX_ATTEMPTS = 2
"""An item is given to a fresh worker once more after its worker died on it."""

ResultCallback = Callable[[dict[str, Any]], None]
StartCallback = Callable[[BatchItem, int], None]
WorkerMain = Callable[..., None]
RAY_MISSING = (
    "--engine ray needs Ray, which is not installed: pip install 'emoapp[ray]' (or pip install ray)"
)


@dataclass
class EngineStats:
    """What an engine reports besides the records."""

    workers: int = 0
    ready_s: float | None = None
    """Seconds from the start until every worker had loaded its models."""
    replaced: int = 0
    """Workers that died and were replaced."""


# --- local: a pool of processes ------------------------------------------------------------


def worker_main(conn: multiprocessing.connection.Connection, job: BatchJob) -> None:
    """A local worker: load the models, say ready, then analyse items until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        worker = ItemWorker(job)
    except EmoappError as error:
        conn.send(("load-failed", str(error)))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        item, attempt = message
        conn.send(("result", worker.run(item, attempt)))


@dataclass
class _Slot:
    process: Any
    conn: multiprocessing.connection.Connection
    ready: bool = False
    task: tuple[BatchItem, int] | None = None


@dataclass
class _Queue:
    items: collections.deque[tuple[BatchItem, int]] = field(default_factory=collections.deque)


def run_local(
    items: list[BatchItem],
    job: BatchJob,
    workers: int,
    on_result: ResultCallback,
    target: WorkerMain = worker_main,
    on_start: StartCallback | None = None,
) -> EngineStats:
    """Analyse ``items`` in ``workers`` processes; ``on_result`` gets each record as it
    arrives, and ``on_start`` each item (and attempt) just before a worker is given it
    (both in the calling thread). ``target`` is the worker's main function
    (:func:`worker_main`; tests pass one that crashes on purpose)."""
    context = multiprocessing.get_context("spawn")
    queue: collections.deque[tuple[BatchItem, int]] = collections.deque((item, 1) for item in items)
    stats = EngineStats(workers=min(workers, len(items)))
    started = time.perf_counter()
    slots: list[_Slot] = []

    def start_worker() -> None:
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=target, args=(child_end, job), name="emoapp-batch-worker", daemon=True
        )
        with _thread_limits(job.threads):  # read by numpy's BLAS when the child imports it
            process.start()
        child_end.close()
        slots.append(_Slot(process, parent_end))

    def give_work(slot: _Slot) -> None:
        if not queue or not slot.process.is_alive():
            return  # a dead worker is retired (and replaced) when its sentinel is seen
        task = queue.popleft()
        if on_start is not None:
            on_start(*task)
        try:
            slot.conn.send(task)
        except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
            # The worker died between items: it never got this one, so it goes back
            # as it was (not an attempt); the sentinel retires and replaces the worker.
            queue.appendleft(task)
            return
        slot.task = task

    def retire(slot: _Slot) -> None:
        slots.remove(slot)
        slot.conn.close()
        slot.process.join(timeout=5)

    try:
        for _ in range(stats.workers):
            start_worker()
        while queue or any(s.task is not None for s in slots):
            waitables: list[Any] = [s.conn for s in slots] + [s.process.sentinel for s in slots]
            ready = multiprocessing.connection.wait(waitables)
            for slot in list(slots):
                message = None
                if slot.conn in ready or slot.process.sentinel in ready:
                    with contextlib.suppress(EOFError, OSError):
                        if slot.conn.poll():
                            message = slot.conn.recv()
                if message is not None:
                    kind, payload = message
                    if kind == "load-failed":
                        raise EmoappError(f"a worker could not load the models: {payload}")
                    if kind == "ready":
                        slot.ready = True
                        if all(s.ready for s in slots) and stats.ready_s is None:
                            stats.ready_s = time.perf_counter() - started
                    elif kind == "result":
                        slot.task = None
                        on_result(payload)
                    give_work(slot)
                elif slot.process.sentinel in ready and not slot.process.is_alive():
                    code = slot.process.exitcode
                    if not slot.ready:
                        raise EmoappError(
                            f"a worker died while loading the models (exit code {code})"
                        )
                    retire(slot)
                    stats.replaced += 1  # replaced below when there is work left
                    if slot.task is not None:
                        item, attempt = slot.task
                        if attempt < MAX_ATTEMPTS:
                            queue.appendleft((item, attempt + 1))
                        else:
                            on_result(died_record(item, job, attempt, f"exit code {code}"))
                    if queue and len(slots) < stats.workers:
                        start_worker()
    finally:
        _stop_local(slots)
    return stats


@contextlib.contextmanager
def _thread_limits(threads: int | None) -> Iterator[None]:
    """The environment a spawned worker starts with: the thread-pool variables set to its
    share of the cores (those the person set are left alone)."""
    added = [n for n in THREAD_VARIABLES if threads and n not in os.environ]
    for name in added:
        os.environ[name] = str(threads)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _stop_local(slots: list[_Slot]) -> None:
    """Idle workers are told to stop; busy ones (an interruption) are terminated."""
    for slot in slots:
        with contextlib.suppress(OSError, ValueError):
            if slot.task is None:
                slot.conn.send(None)
            else:
                slot.process.terminate()
    deadline = time.monotonic() + 10.0
    for slot in slots:
        slot.process.join(timeout=max(0.1, deadline - time.monotonic()))
        if slot.process.is_alive():
            slot.process.kill()
            slot.process.join(timeout=5)
        slot.conn.close()


# --- ray: a pool of actors -----------------------------------------------------------------


class RayItemWorker:
    """The body of a Ray actor: an :class:`ItemWorker` and a way to ask whether it
    loaded."""

    def __init__(self, job: BatchJob) -> None:
        self.load_error: str | None = None
        self.worker: ItemWorker | None = None
        try:
            self.worker = ItemWorker(job)
        except EmoappError as error:
            self.load_error = str(error)

    def ready(self) -> str | None:
        """None when the models loaded, else why not."""
        return self.load_error

    def pid(self) -> int:
        return os.getpid()

    def run(self, item: BatchItem, attempt: int) -> dict[str, Any]:
        assert self.worker is not None
        return self.worker.run(item, attempt)


def import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError as error:
        if error.name != "ray":
            raise
        raise EmoappError(RAY_MISSING) from error
    return ray


def run_ray(
    items: list[BatchItem],
    job: BatchJob,
    workers: int | None,
    on_result: ResultCallback,
    address: str | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    worker_class: type[RayItemWorker] = RayItemWorker,
    on_start: StartCallback | None = None,
) -> EngineStats:
    """Analyse ``items`` on a pool of Ray actors (see the module docstring). ``workers``
    None: as many as the cluster's CPUs (and GPUs) allow; more than that are not
    started (they could not be placed). ``worker_class``: the actors' body
    (:class:`RayItemWorker`; tests pass one that dies on purpose)."""
    ray = import_ray()
    started = time.perf_counter()
    started_here = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        started_here = True
    actors: list[Any] = []
    try:
        # Actors the cluster cannot place now would wait forever: as many as fit.
        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 0.0)), float(resources.get("GPU", 0.0))
        if gpus_per_worker > 0 and gpus <= 0:
            raise EmoappError("--gpus-per-worker: the Ray cluster has no GPU")
        fit = int(cpus // max(cpus_per_worker, 1e-9))
        if gpus_per_worker > 0:
            fit = min(fit, int(gpus // gpus_per_worker))
        if fit < 1:
            raise EmoappError(
                f"the Ray cluster has no room for one worker ({cpus:g} CPUs, {gpus:g} GPUs; "
                f"a worker needs {cpus_per_worker:g} CPU and {gpus_per_worker:g} GPU)"
            )
        count = max(1, min(workers or fit, fit, len(items)))
        stats = EngineStats(workers=count)
        if job.threads is None:  # as many torch threads as the actor has CPUs
            job = dataclasses.replace(job, threads=max(1, int(cpus_per_worker)))
        actor_class = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)(worker_class)

        def new_actor() -> Any:
            actor = actor_class.remote(job)
            problem = ray.get(actor.ready.remote())
            if problem is not None:
                raise EmoappError(f"a worker could not load the models: {problem}")
            return actor

        actors.extend(actor_class.remote(job) for _ in range(count))
        for problem in ray.get([a.ready.remote() for a in actors]):
            if problem is not None:
                raise EmoappError(f"a worker could not load the models: {problem}")
        stats.ready_s = time.perf_counter() - started
        queue: collections.deque[tuple[BatchItem, int]] = collections.deque(
            (item, 1) for item in items
        )
        idle = list(actors)
        running: dict[Any, tuple[Any, BatchItem, int]] = {}
        while queue or running:
            while idle and queue:
                actor = idle.pop()
                item, attempt = queue.popleft()
                if on_start is not None:
                    on_start(item, attempt)
                running[actor.run.remote(item, attempt)] = (actor, item, attempt)
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                actor, item, attempt = running.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayActorError as error:
                    stats.replaced += 1
                    with contextlib.suppress(Exception):
                        ray.kill(actor)
                    actors.remove(actor)
                    replacement = new_actor()
                    actors.append(replacement)
                    idle.append(replacement)
                    why = type(error).__name__
                    if attempt < MAX_ATTEMPTS:
                        queue.appendleft((item, attempt + 1))
                    else:
                        on_result(died_record(item, job, attempt, why))
                    continue
                idle.append(actor)
                on_result(record)
        return stats
    finally:
        for actor in actors:
            with contextlib.suppress(Exception):  # an actor already gone is fine
                ray.kill(actor)
        if started_here:
            ray.shutdown()


# --- the run -------------------------------------------------------------------------------


@dataclass
class BatchReport:
    """What a run did."""

    total: int
    skipped: int
    """Finished by an earlier run with the same configuration; not redone."""
    records: dict[str, dict[str, Any]]
    """Every item's latest record (this run's, or the journal's)."""
    index_path: Path | None = None
    elapsed_s: float = 0.0
    interrupted: bool = False
    engine: EngineStats = field(default_factory=EngineStats)

    def count(self, status: str) -> int:
        return sum(1 for r in self.records.values() if r.get("status") == status)

    @property
    def this_run(self) -> list[dict[str, Any]]:
        return [r for r in self.records.values() if r.get("this_run")]

    @property
    def media_s(self) -> float:
        """Media seconds analysed in this run."""
        return sum(float(r.get("analysed_s") or 0.0) for r in self.this_run)

    def format(self) -> str:
        """The summary printed at the end."""
        done, truncated, failed = self.count(DONE), self.count(TRUNCATED), self.count(FAILED)
        pending = self.total - done - truncated - failed
        worked = len([r for r in self.this_run if r.get("status") != "pending"])
        rate = worked / self.elapsed_s * 60 if self.elapsed_s > 0 else 0.0
        hours = self.media_s / 3600
        lines = [
            f"batch: {self.total} items: {done} done, {truncated} truncated, {failed} failed"
            + (f", {pending} not reached" if pending else "")
            + (f" ({self.skipped} finished earlier, skipped)" if self.skipped else ""),
            f"this run: {worked} item{'' if worked == 1 else 's'}, "
            f"{self.media_s / 60:.1f} min of media in "
            f"{self.elapsed_s:.1f} s ({rate:.1f} items/min, "
            f"{hours / (self.elapsed_s / 3600) if self.elapsed_s > 0 else 0.0:.1f} "
            f"media-hours/hour) on {self.engine.workers} worker(s)"
            + (f"; {self.engine.replaced} worker(s) died and were replaced"
               if self.engine.replaced else ""),
        ]  # fmt: skip
        problems = [r for r in self.records.values() if r.get("status") in (FAILED, TRUNCATED)]
        for record in problems[:10]:
            lines.append(f"  {record['status']}: {record['id']}: {record.get('error')}")
        if len(problems) > 10:
            lines.append(f"  ... and {len(problems) - 10} more (see the index)")
        if self.index_path is not None:
            lines.append(f"index: {self.index_path}")
        return "\n".join(lines)


class BatchProgress:
    """A tqdm bar over items on stderr with media hours done and their rate (nothing when
    disabled)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar: Any = None
        self._media_s = 0.0
        self._started = time.perf_counter()
        if enabled and total:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="item", desc="batch", file=sys.stderr)

    def __call__(self, record: dict[str, Any]) -> None:
        if self._bar is None:
            return
        self._media_s += float(record.get("analysed_s") or 0.0)
        hours = self._media_s / 3600
        wall_h = max(time.perf_counter() - self._started, 1e-9) / 3600
        self._bar.set_postfix_str(
            f"{hours:.2f} h media, {hours / wall_h:.1f} h/h, {record.get('status')}: "
            f"{record.get('id')}",
            refresh=False,
        )
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def run_batch(
    items: list[BatchItem],
    job: BatchJob,
    engine: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    gpus_per_worker: float = 0.0,
    progress: bool = False,
    local_target: WorkerMain = worker_main,
) -> BatchReport:
    """Skip what is done, analyse the rest on ``engine``, journal each record as it comes,
    and write the index (also when interrupted: the exception then propagates)."""
    if engine not in ENGINES:
        raise EmoappError(f"unknown engine {engine!r}; choose {' or '.join(ENGINES)}")
    if engine == "ray":
        import_ray()  # say what to install before anything else happens
    started = time.perf_counter()
    out_dir = job.out_dir
    (out_dir / TIMELINES).mkdir(parents=True, exist_ok=True)
    for stale in (out_dir / TIMELINES).rglob(f"*{PART_SUFFIX}"):
        stale.unlink()  # what an interrupted run left mid-item
    journal = Journal(out_dir)
    earlier = read_journal(out_dir)
    records: dict[str, dict[str, Any]] = {}
    todo: list[BatchItem] = []
    for item in items:
        record = earlier.get(item.id)
        if already_done(item, job, record):
            assert record is not None
            records[item.id] = {**record, "this_run": False}
        else:
            todo.append(item)
    report = BatchReport(total=len(items), skipped=len(items) - len(todo), records=records)
    bar = BatchProgress(len(todo), enabled=progress)

    def on_result(record: dict[str, Any]) -> None:
        record["this_run"] = True
        journal.append(record)
        records[record["id"]] = record
        bar(record)

    def on_start(item: BatchItem, attempt: int) -> None:
        # The journal first: until the result's record follows, the item is unfinished,
        # whatever timeline the worker leaves behind.
        journal.append(started_record(item, attempt))

    try:
        if todo:
            if engine == "local":
                count = workers or default_workers()
                if job.threads is None:
                    # Workers share the cores: torch's default (a thread per core in every
                    # worker) oversubscribes them.
                    threads = max(1, (os.cpu_count() or 1) // count)
                    job = dataclasses.replace(job, threads=threads)
                report.engine = run_local(
                    todo, job, count, on_result, local_target, on_start=on_start
                )
            else:
                report.engine = run_ray(
                    todo,
                    job,
                    workers,
                    on_result,
                    address=ray_address,
                    gpus_per_worker=gpus_per_worker,
                    on_start=on_start,
                )
    except KeyboardInterrupt:
        report.interrupted = True
        raise
    finally:
        bar.close()
        report.elapsed_s = time.perf_counter() - started
        report.index_path = write_index(out_dir, index_rows(items, records))
    return report


def default_workers() -> int:
    """Local workers when not given: one per two cores (each worker's torch uses more than
    one thread), at least one."""
    return max(1, (os.cpu_count() or 1) // 2)


def finished(report: BatchReport) -> int:
    """Items with a timeline."""
    return sum(1 for r in report.records.values() if r.get("status") in FINISHED)
