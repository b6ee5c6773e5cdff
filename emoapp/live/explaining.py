"""The explanation worker of a live session: one low-priority thread that explains the
newest prediction of each modality, on request or at most every ``every_s`` seconds.

Explaining costs more than classifying (a backward pass, or one re-classification per
word or per stretch of audio), so it never runs on every frame and never in a modality's
own worker: the workers only *offer* their newest (input, prediction) pair, which
replaces the one offered before (latest-wins: nothing queues up), and return. The
explanation thread picks a pair when it is due, explains it with
:func:`emoapp.encoders.explain.explainer_for`'s method, and hands the result to
``deliver`` (the session posts it to its fusion thread, which calls the listeners'
``on_explanation``). On Linux the thread lowers its own scheduling priority (nice +10),
so the encoders' workers win the CPU when both want it.

Withdrawal: :meth:`ExplanationWorker.forget` drops the (input, prediction) held for a
capture (the last camera frame, the last audio window, the last heard entry), and an
explanation already under way for it is discarded when it finishes (``admits`` and the
forget are checked at delivery, :mod:`emoapp.core.provenance`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emoapp.capture.base import one_line
from emoapp.core.messages import Modality, ModalityPrediction
from emoapp.core.provenance import Provenance, origin_of, provenance_of
from emoapp.live.threads import lower_thread_priority

log = logging.getLogger(__name__)

NICENESS = 10
"""How much the explanation thread lowers its own priority (Linux threads only)."""
SETTLE_S = 0.1
"""An offer is explained no sooner than this after it was made, so that the fusion
thread has fused and shown the new prediction first (explaining competes with it for the
interpreter). A newer offer restarts the wait only within SETTLE_S of the first offer
still waiting: predictions that come faster than SETTLE_S (a camera at 30 fps) would
otherwise postpone the explanation for ever."""


@dataclass
class ExplanationCost:
    """How long explanations of one modality took (seconds of wall time)."""

    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    failures: int = 0

    @property
    def mean_s(self) -> float | None:
        return self.total_s / self.count if self.count else None


@dataclass
class _Offer:
    encoder: Any
    item: Any
    prediction: ModalityPrediction
    seq: int
    offered_at: float


@dataclass
class _State:
    offer: _Offer | None = None
    explained_seq: int = -1
    waiting_since: float = float("-inf")  # when the first offer not yet explained came
    last_started: float = float("-inf")
    requested: bool = False
    cost: ExplanationCost = field(default_factory=ExplanationCost)
    explainer: tuple[Any, Any] | None = None  # (encoder, its explainer)


class ExplanationWorker:
    """Explains the newest prediction per modality on its own thread.

    ``every_s``: explain each modality's newest prediction at most this often (None:
    only on :meth:`request`). ``deliver(explanation)`` and ``failed(modality, message)``
    are called on the explanation thread. ``explainer_for(encoder)`` gives the method
    (default :func:`emoapp.encoders.explain.explainer_for`; None: the encoder offers
    none, and its offers are ignored).
    """

    def __init__(
        self,
        deliver: Callable[..., None],
        failed: Callable[[Modality, str], None] | None = None,
        every_s: float | None = None,
        explainer_for: Callable[[Any], Any] | None = None,
        *,
        admits: Callable[[ModalityPrediction], bool] | None = None,
        with_provenance: bool = False,
    ) -> None:
        """``admits(prediction)``, asked when an explanation is done: False drops it
        (its capture was withdrawn meanwhile). With ``with_provenance``, ``deliver`` is
        called as ``deliver(explanation, provenance)`` (the explained prediction's)."""
        if every_s is not None and not every_s > 0:
            raise ValueError("every_s must be positive (or None: on request only)")
        if explainer_for is None:
            from emoapp.encoders.explain import explainer_for as default

            explainer_for = default
        self.every_s = every_s
        self._deliver = deliver
        self._failed = failed or (lambda m, message: None)
        self._explainer_for = explainer_for
        self._cond = threading.Condition(threading.Lock())
        self._states = {m: _State() for m in Modality}
        self._seq = 0
        self._forgotten: dict[Modality, int] = {}  # origin -> offers up to this seq are void
        self._admits = admits
        self._with_provenance = with_provenance
        self.discarded = 0
        """Explanations finished after their capture was withdrawn: never delivered."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- from other threads -----------------------------------------------------------

    def offer(self, modality: Modality, encoder: Any, item: Any, output: Any) -> None:
        """The newest (input, output) of a modality's worker; replaces the one before.
        Outputs that are not predictions are ignored. Returns at once."""
        if not isinstance(output, ModalityPrediction):
            return
        with self._cond:  # checked under the lock forget() takes: never held after it
            if self._admits is not None and not self._admits(output):
                return  # withdrawn since it was computed: not kept, not even for a moment
            self._seq += 1
            offer = _Offer(encoder, item, output, self._seq, time.monotonic())
            state = self._states[modality]
            if state.offer is None or state.offer.seq == state.explained_seq:
                state.waiting_since = offer.offered_at
            state.offer = offer
            self._cond.notify()

    def forget(self, origin: Modality) -> int:
        """Drop every offer whose input came from ``origin`` (a capture withdrawn), and
        void an explanation of one under way. Returns how many offers were dropped."""
        dropped = 0
        with self._cond:
            self._forgotten[origin] = self._seq
            for state in self._states.values():
                if state.offer is not None and origin_of(state.offer.prediction) is origin:
                    state.offer = None
                    state.requested = False
                    dropped += 1
        return dropped

    def held(self) -> dict[Modality, Any]:
        """The input held per modality, waiting to be explained (for privacy checks)."""
        with self._cond:
            return {m: s.offer.item for m, s in self._states.items() if s.offer is not None}

    def request(self, modality: Modality | None = None) -> None:
        """Explain the newest prediction of ``modality`` (every modality: None) as soon
        as the thread is free, whatever ``every_s`` says."""
        with self._cond:
            for m in [modality] if modality is not None else list(Modality):
                self._states[m].requested = True
            self._cond.notify()

    def set_every(self, every_s: float | None) -> None:
        if every_s is not None and not every_s > 0:
            raise ValueError("every_s must be positive (or None: on request only)")
        with self._cond:
            self.every_s = every_s
            self._cond.notify()

    def costs(self) -> dict[Modality, ExplanationCost]:
        with self._cond:
            return {
                m: ExplanationCost(s.cost.count, s.cost.total_s, s.cost.max_s, s.cost.failures)
                for m, s in self._states.items()
            }

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> threading.Thread:
        if self.running:
            assert self._thread is not None
            return self._thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emoapp-explain", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop the thread (an explanation under way finishes first); True if it ended
        within ``timeout``."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # -- the thread ---------------------------------------------------------------------

    def _next(self, now: float) -> tuple[Modality, _Offer] | float | None:
        """The job due now, or how long to wait for the next (None: until woken)."""
        wait: float | None = None
        for m, state in self._states.items():
            offer = state.offer
            if offer is None:
                continue
            # the newest offer settles SETTLE_S after it came, but its wait starts no
            # later than SETTLE_S after the first offer still waiting (at most 2 x SETTLE_S)
            settled = min(offer.offered_at, state.waiting_since + SETTLE_S) + SETTLE_S
            if state.requested:
                if settled <= now:
                    state.requested = False
                    return m, offer
                wait = settled - now if wait is None else min(wait, settled - now)
                continue
            if self.every_s is None or offer.seq == state.explained_seq:
                continue
            due = max(state.last_started + self.every_s, settled)
            if due <= now:
                return m, offer
            wait = due - now if wait is None else min(wait, due - now)
        return wait

    def _run(self) -> None:
        lower_thread_priority(NICENESS)  # False where not possible: runs at normal priority
        while not self._stop.is_set():
            with self._cond:
                job = self._next(time.monotonic())
                if not isinstance(job, tuple):
                    self._cond.wait(0.5 if job is None else min(job, 0.5))
                    continue
                m, offer = job
                state = self._states[m]
                state.explained_seq = offer.seq
                state.last_started = time.monotonic()
            self._explain(m, offer)

    def _explain(self, m: Modality, offer: _Offer) -> None:
        state = self._states[m]  # the cache is only touched on this thread
        if state.explainer is None or state.explainer[0] is not offer.encoder:
            state.explainer = (offer.encoder, self._explainer_for(offer.encoder))
        explainer = state.explainer[1]
        if explainer is None:
            return
        started = time.perf_counter()
        try:
            explanation = explainer.explain(offer.item, offer.prediction)
        # An explainer runs the model in another way (gradients, edited inputs): whatever
        # fails there is reported and the session goes on.
        except Exception as exc:  # noqa: BLE001
            with self._cond:
                cost = self._states[m].cost
                cost.failures += 1
            message = f"{m.value} explanation failed: {type(exc).__name__}: {one_line(exc)}"
            log.warning("%s", message)
            self._failed(m, message)
            return
        elapsed = time.perf_counter() - started
        with self._cond:
            cost = self._states[m].cost
            cost.count += 1
            cost.total_s += elapsed
            cost.max_s = max(cost.max_s, elapsed)
            origin = origin_of(offer.prediction)
            void = origin is not None and offer.seq <= self._forgotten.get(origin, -1)
        if void or (self._admits is not None and not self._admits(offer.prediction)):
            with self._cond:
                self.discarded += 1
            return  # its capture was withdrawn while it was explained
        if self._with_provenance:
            provenance: Provenance | None = provenance_of(offer.prediction)
            self._deliver(explanation, provenance)
        else:
            self._deliver(explanation)
