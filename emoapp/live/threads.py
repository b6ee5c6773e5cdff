"""The live session's thread and core budget.

Each modality's worker runs its encoder on its own thread, and so does speech recognition
when the session transcribes (worker ``asr``); torch, OpenCV and the BLAS
library under numpy each keep a pool of threads *per calling thread* and by default size
it to every core. Three workers on two cores then run six or more busy threads and the
cores thrash (the hardening note measured a 4.6x slower forward). The plan here gives
each worker thread a share of the cores instead:

- ``torch_threads``: torch intra-op threads per worker thread (``torch.set_num_threads``:
  process-wide, and torch applies it to every thread that calls into it, so each worker
  gets that many). The cores left after one for capture, fusion and the window (when
  there are four or more) are split evenly among the model workers, at least one each;
- ``interop_threads``: torch's inter-op pool, unused by a forward pass: 1 (it can only be
  set before torch's first parallel work; when too late it is left and said so);
- ``opencv_threads``: OpenCV's pool (face detection, resizing): the same share;
- ``blas_threads``: numpy's BLAS (through threadpoolctl when it is installed): the same.

``EMOAPP_THREADS`` or ``--threads N`` sets the per-worker count by hand. Which of these
could actually be applied is kept in :attr:`ThreadPlan.applied` and shown in
``emoapp live --verbose`` and the window's status-bar tooltip.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from emoapp.core.errors import EmoappError

log = logging.getLogger(__name__)

THREADS_ENV = "EMOAPP_THREADS"
RESERVE_FROM_CORES = 4
"""With at least this many cores, one is left for capture, fusion and the window."""


@dataclass(frozen=True)
class ThreadPlan:
    """How many threads each library may use per worker thread, and why."""

    cores: int
    workers: tuple[str, ...]
    torch_threads: int
    interop_threads: int
    opencv_threads: int
    blas_threads: int
    source: str
    """``auto`` (from the cores and workers), ``--threads`` or ``EMOAPP_THREADS``."""
    applied: tuple[str, ...] = field(default=())
    """What :func:`apply_plan` could set, e.g. ``torch intra-op 1``; and what not."""

    def describe(self) -> str:
        """One line for a person: the plan and where it comes from."""
        who = ", ".join(self.workers) or "no model workers"
        text = (
            f"threads: {self.cores} core(s), {len(self.workers)} model worker(s) ({who}); "
            f"per worker: torch {self.torch_threads}, OpenCV {self.opencv_threads}, "
            f"BLAS {self.blas_threads}; torch inter-op {self.interop_threads} ({self.source})"
        )
        if self.applied:
            text += "; applied: " + ", ".join(self.applied)
        return text


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def parse_threads(value: str | int | None, where: str) -> int | None:
    """A per-worker thread count from an option or the environment (None: not given)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise EmoappError(f"{where} {value!r}: give a whole number of threads (1 or more)")
    return n


def plan_threads(
    cores: int,
    workers: Iterable[str],
    override: int | None = None,
    source: str = "--threads",
) -> ThreadPlan:
    """The plan for ``workers`` (names of the model workers: face, voice, text, asr...)
    on ``cores`` cores; ``override`` fixes the per-worker count (``source`` names where
    it came from)."""
    if cores < 1:
        raise ValueError("cores must be at least 1")
    names = tuple(dict.fromkeys(str(w) for w in workers))
    if override is not None:
        if override < 1:
            raise ValueError("override must be at least 1")
        per = int(override)
        origin = source
    else:
        budget = cores - 1 if cores >= RESERVE_FROM_CORES else cores
        per = max(1, budget // max(1, len(names)))
        origin = "auto"
    return ThreadPlan(cores, names, per, 1, per, per, origin)


def plan_for_session(
    workers: Iterable[str], override: int | None = None, cores: int | None = None
) -> ThreadPlan:
    """The plan for a session: ``override`` (``--threads``), else ``EMOAPP_THREADS``,
    else chosen from the cores."""
    names = list(workers)
    n_cores = available_cores() if cores is None else cores
    if override is not None:
        return plan_threads(n_cores, names, override, "--threads")
    from_env = parse_threads(os.environ.get(THREADS_ENV), THREADS_ENV)
    if from_env is not None:
        return plan_threads(n_cores, names, from_env, THREADS_ENV)
    return plan_threads(n_cores, names)


def imported_library(name: str) -> Any:
    """The module ``name`` when something has imported it, else None (nothing is
    imported here). A module another thread is still importing (an encoder loading
    while the window's session runs) is returned once that import has finished: the
    import system's per-module lock makes :func:`importlib.import_module` wait, so a
    half-initialised module (``cv2`` without ``setNumThreads`` yet) is never used."""
    if name not in sys.modules:
        return None
    return importlib.import_module(name)


def apply_plan(plan: ThreadPlan) -> ThreadPlan:
    """Set the libraries' thread pools as ``plan`` says, for the libraries already
    imported (a session's encoders are loaded first; nothing heavy is imported here).
    Returns the plan with :attr:`~ThreadPlan.applied` saying what was set."""
    applied: list[str] = []
    torch = imported_library("torch")
    if torch is not None:
        torch.set_num_threads(plan.torch_threads)
        applied.append(f"torch intra-op {plan.torch_threads}")
        try:
            torch.set_num_interop_threads(plan.interop_threads)
            applied.append(f"torch inter-op {plan.interop_threads}")
        except RuntimeError:  # torch allows it only before its first parallel work
            applied.append(f"torch inter-op left at {torch.get_num_interop_threads()}")
    cv2 = imported_library("cv2")
    if cv2 is not None:
        cv2.setNumThreads(plan.opencv_threads)
        applied.append(f"OpenCV {plan.opencv_threads}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        applied.append("BLAS not limited (no threadpoolctl)")
    else:
        threadpool_limits(limits=plan.blas_threads, user_api="blas")
        applied.append(f"BLAS {plan.blas_threads}")
    log.info("%s", plan.describe())
    return replace(plan, applied=tuple(applied))


def lower_thread_priority(increment: int) -> bool:
    """Make the calling thread ``increment`` steps nicer (Linux, where each thread has
    its own nice value), so that on a busy CPU the face and voice workers come first;
    False where that is not possible."""
    if increment <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + increment))
    except (OSError, AttributeError):
        return False
    return True
