"""A sustained live run: the real :class:`~emoapp.live.session.LiveSession` on replayed
media, with all three encoders running, for a minute or more.

Sources: the sample video re-encoded at 30 fps (looped), the sample speech at real-time
pace (looped), and a typed entry every few seconds (looped). Measured after a warm-up:

- **estimate age** per modality, at every fused estimate: how old the input behind the
  modality's part of it is. For the voice the session stamps a window with its *first*
  sample, so its age includes the window length; the age from the window's *last* sample
  (the freshest audio in it) is given beside it. Text arrives every few seconds, so its
  age grows between entries by design: its *latency* (entry to the first estimate that
  includes it) is the figure to read;
- inputs, encoder calls and **drops** (frames replaced before the encoder took them);
- **CPU use**: process CPU time over wall time (all threads; 1.0 = one core busy);
- **resident memory** (``VmRSS``) at the start and end of the measured span, its peak, and
  its trend over the second half (MiB per minute): it must not grow.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoapp.bench.common import (
    BenchConfig,
    BenchError,
    load_average,
    make_30fps_clip,
    process_cpu_s,
    round_ms,
    rss_mb,
    sample_media,
    say,
    write_text_lines,
)
from emoapp.core import clock
from emoapp.core.lag import Histogram
from emoapp.core.messages import FusedEstimate, Modality

TEXT_EVERY_S = 3.0
WARMUP_S = 8.0
LAG_TIMER_MS = 10
"""The window run's lag timer (:data:`emoapp.ui.window_bench.LAG_INTERVAL_MS`)."""


@dataclass
class EstimateRecorder:
    """A session listener that keeps the ages and latencies of the estimates' inputs
    once ``armed`` (after the warm-up). Cheap: it runs on the session's fusion thread.
    They are counted in 1 ms bins (:class:`~emoapp.core.lag.Histogram`), not kept one by
    one: a 10-minute run's ~190,000 values in lists grew the process by ~0.6 MiB a
    minute, more than the RSS slope the run is judged by."""

    armed: bool = False
    estimates: int = 0
    first_estimate_t: float | None = None
    first_seen: dict[Modality, float] = field(default_factory=dict)
    ages_s: dict[Modality, Histogram] = field(default_factory=dict)
    fresh_ages_s: dict[Modality, Histogram] = field(default_factory=dict)
    latencies_s: dict[Modality, Histogram] = field(default_factory=dict)
    statuses: dict[Modality, Any] = field(default_factory=dict)
    first_event: threading.Event = field(default_factory=threading.Event)
    _seen_ids: dict[Modality, int] = field(default_factory=dict)

    def on_estimate(self, estimate: FusedEstimate) -> None:
        if estimate.abstained or not estimate.inputs:
            return
        if self.first_estimate_t is None:
            self.first_estimate_t = estimate.t
            self.first_event.set()
        for m in estimate.inputs:
            self.first_seen.setdefault(m, estimate.t)
        if not self.armed:
            return
        self.estimates += 1
        for m, prediction in estimate.inputs.items():
            age = estimate.t - prediction.t
            _histogram(self.ages_s, m).add(age)
            end = prediction.detail.get("window_end") if prediction.detail else None
            fresh = estimate.t - end if isinstance(end, float) else age
            _histogram(self.fresh_ages_s, m).add(fresh)
            if self._seen_ids.get(m) != id(prediction):
                self._seen_ids[m] = id(prediction)
                _histogram(self.latencies_s, m).add(fresh)

    def on_status(self, status: Any) -> None:
        self.statuses[status.modality] = status


AGE_BIN_S = 0.001
"""The bin width of the ages and latencies (seconds)."""


def _histogram(table: dict[Modality, Histogram], m: Modality) -> Histogram:
    found = table.get(m)
    if found is None:
        found = table[m] = Histogram(AGE_BIN_S)
    return found


def _pct_ms(values: Histogram | None, q: float) -> float | None:
    """The nearest-rank percentile in milliseconds (the 1 ms bin's upper edge)."""
    found = None if values is None else values.percentile(q)
    return None if found is None else round_ms(found * 1000.0, 1)


def _rss_slope(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares trend of RSS (MiB per minute) over ``samples`` (seconds, MiB); None
    with fewer than three or no time between them."""
    if len(samples) < 3:
        return None
    t = np.array([s[0] for s in samples])
    y = np.array([s[1] for s in samples])
    if float(np.ptp(t)) <= 0:
        return None
    return round(float(np.polyfit(t, y, 1)[0]) * 60.0, 2)


def _rss_each_minute(samples: list[tuple[float, float]]) -> list[float]:
    """RSS (MiB) at the start of the measured span and after each whole minute of it
    (at most one value a minute: a 10-minute run gives 11)."""
    out: list[float] = []
    for t, rss in samples:
        if t >= 60.0 * len(out):
            out.append(round(rss, 1))
    return out


def live_media(config: BenchConfig) -> tuple[Path, Path, Path]:
    """The 30 fps clip, the speech file and the typed lines (made once, in the cache)."""
    media = config.cache_dir() / "media"
    clip = make_30fps_clip(sample_media("face_speech.mp4"), media / "face_speech_30fps.mp4")
    return clip, sample_media("speech.wav"), write_text_lines(media / "typed.txt")


def _classified(encoder: object) -> dict[str, int] | None:
    """Face frames whose faces were classified (``run``) or all kept their earlier
    classification (``reused``) so far (:class:`~emoapp.encoders.face.ClassifyReuse`);
    None without reuse (every encoder call with a face ran the classifier)."""
    reuse = getattr(encoder, "reuse", None)
    if reuse is None:
        return None
    return {"run": int(reuse.run), "reused": int(reuse.reused)}


@dataclass
class _Span:
    """What one measured span of a live session gave (see :func:`_measure`)."""

    before: dict[Modality, Any]
    after: dict[Modality, Any]
    status: dict[Modality, Any]
    plan: Any
    located: dict[str, Any]
    explained: dict[str, Any]
    cpu_s: float
    wall_s: float
    rss_samples: list[tuple[float, float]]
    classified_before: dict[str, int] | None = None
    classified: dict[str, int] | None = None


def _measure(
    session: Any,
    recorder: EstimateRecorder,
    encoders: dict[Modality, Any],
    warmup: float,
    duration: float,
    on_armed: Any = None,
) -> _Span:
    """Wait out the warm-up, arm the recorder (and ``on_armed()``), then sample CPU and
    RSS for ``duration`` seconds; the session keeps running."""
    time.sleep(warmup)
    before = session.metrics()
    classified_before = _classified(encoders.get(Modality.FACE))
    recorder.armed = True
    if on_armed is not None:
        on_armed()
    cpu0, wall0 = process_cpu_s(), time.perf_counter()
    rss_samples: list[tuple[float, float]] = []
    while (elapsed := time.perf_counter() - wall0) < duration:
        rss = rss_mb()
        if rss is not None:
            rss_samples.append((elapsed, rss))
        time.sleep(min(1.0, max(0.0, duration - elapsed)))
    cpu = process_cpu_s() - cpu0
    wall = time.perf_counter() - wall0
    rss = rss_mb()
    if rss is not None:
        rss_samples.append((wall, rss))
    after = session.metrics()
    classified = _classified(encoders.get(Modality.FACE))
    detector = getattr(encoders.get(Modality.FACE), "detector", None)
    return _Span(
        before=before,
        after=after,
        status=session.status(),
        plan=session.thread_plan,
        located={
            "detected": getattr(detector, "detections", None),
            "tracked": getattr(detector, "tracked", None),
        },
        explained={
            m.value: {
                "count": c.count,
                "failures": c.failures,
                "mean_ms": _s_to_ms(c.mean_s),
                "max_ms": _s_to_ms(c.max_s),
            }
            for m, c in session.explanation_costs().items()
        },
        cpu_s=cpu,
        wall_s=wall,
        rss_samples=rss_samples,
        classified_before=classified_before,
        classified=classified,
    )


def run_live(
    config: BenchConfig,
    encoders: dict[Modality, Any],
    variant_name: str,
    explain_every_s: float | None = None,
    profile: str | None = None,
    transcriber: Any = None,
    window: bool = False,
) -> dict[str, Any]:
    """Run the live session for ``config.duration_s`` (plus the warm-up) and measure it;
    with ``explain_every_s``, with explanations on (every modality, that often).
    The session plans its threads (``config.threads``: the per-worker count by hand) and
    detects faces every ``config.face_detect_every`` frames, as ``emoapp live`` does;
    ``profile`` names the profile whose models these are, for the record. With
    ``transcriber`` (a LiveTranscriber), speech is transcribed too. With ``window``, the
    session runs inside the real main window (:mod:`emoapp.ui.window_bench`; needs
    PySide6, draws offscreen without a display) and the record adds the window's
    event-loop lag (``ui_lag_p50_ms``, ``ui_lag_p99_ms``, ...)."""
    from emoapp.capture.replay import AudioReplaySource, TextReplaySource, VideoReplaySource
    from emoapp.live.session import LiveSession

    clip, speech, lines = live_media(config)
    duration = config.duration_s
    warmup = min(WARMUP_S, max(1.0, duration / 4))
    for encoder in encoders.values():
        encoder.load()
    say(
        f"live: {warmup:g} s warm-up, then {duration:g} s measured"
        + (" in the window" if window else "")
    )
    recorder = EstimateRecorder()
    load_start = load_average()
    started = clock.now()
    window_keys: dict[str, Any] = {}
    if window:
        if explain_every_s is not None or transcriber is not None:
            raise BenchError(
                "the window run measures the live session without explanations or "
                "speech recognition"
            )
        try:
            from emoapp.ui.window_bench import run_in_window
        except ImportError as exc:
            raise BenchError(f"--window needs PySide6: {exc}") from exc
        spans: list[_Span] = []

        def drive(session: Any, lag: Any) -> None:
            session.add_listener(recorder)
            spans.append(_measure(session, recorder, encoders, warmup, duration, lag.arm))

        try:
            run = run_in_window(
                clip,
                speech,
                lines,
                TEXT_EVERY_S,
                encoders,
                drive,
                profile=profile or variant_name,
                threads=config.threads,
                face_detect_every=config.face_detect_every,
                face_reclassify_after=config.face_reclassify_after,
            )
        except RuntimeError as exc:
            raise BenchError(f"the window run failed: {exc}") from exc
        span, left = spans[0], run.threads_left_running
        lag = run.lag.stats()
        window_keys = {
            "window": run.window,
            "ui_lag_definition": (
                f"lateness of a {LAG_TIMER_MS} ms precise timer on the window's UI thread "
                "(time since the previous tick minus the interval, floored at 0), every "
                "tick of the measured span after the warm-up"
            ),
            "ui_lag_samples": lag.samples if lag else 0,
            "ui_lag_p50_ms": lag.p50_ms if lag else None,
            "ui_lag_p95_ms": lag.p95_ms if lag else None,
            "ui_lag_p99_ms": lag.p99_ms if lag else None,
            "ui_lag_max_ms": lag.max_ms if lag else None,
        }
    else:
        sources = {
            Modality.FACE: VideoReplaySource(clip, loop=True),
            Modality.VOICE: AudioReplaySource(speech, loop=True),
            Modality.TEXT: TextReplaySource(lines, interval_s=TEXT_EVERY_S, first_s=1.0, loop=True),
        }
        session = LiveSession(
            sources,
            encoders,
            rate_hz=10.0,
            threads=config.threads,
            face_detect_every=config.face_detect_every,
            face_reclassify_after=config.face_reclassify_after,
            transcriber=transcriber,
        )
        if explain_every_s is not None:
            session.enable_explanations(explain_every_s)
        session.add_listener(recorder)
        session.start()
        try:
            span = _measure(session, recorder, encoders, warmup, duration)
        finally:
            left = session.stop()
    before, after, status, wall = span.before, span.after, span.status, span.wall_s
    modalities: dict[str, Any] = {}
    for m in Modality:
        end, start = after.get(m), before.get(m)
        if end is None:
            continue
        inputs = end.inputs - (start.inputs if start else 0)
        dropped = end.dropped - (start.dropped if start else 0)
        modalities[m.value] = {
            "unit": end.unit,
            "inputs": inputs,
            "encoded": end.encoded - (start.encoded if start else 0),
            "dropped": dropped,
            "drop_fraction": round(dropped / inputs, 3) if inputs else 0.0,
            "errors": end.errors - (start.errors if start else 0),
            "input_rate_hz": round(end.input_rate_hz, 2),
            "encoder_rate_hz": round(end.encoder_rate_hz, 2),
            "encoder_time_p50_ms": _s_to_ms(end.encoder_time_p50_s),
            "encoder_time_p95_ms": _s_to_ms(end.encoder_time_p95_s),
            "age_p50_ms": _pct_ms(recorder.ages_s.get(m), 50),
            "age_p95_ms": _pct_ms(recorder.ages_s.get(m), 95),
            "latency_p50_ms": _pct_ms(recorder.latencies_s.get(m), 50),
            "latency_p95_ms": _pct_ms(recorder.latencies_s.get(m), 95),
            "state": status[m].state,
            "message": status[m].message,
        }
        if m is Modality.FACE:
            # encoder_rate_hz counts the predictions issued (reused classifications too);
            # this counts the frames the classifier itself ran on, over the measured time.
            rate: float | None = round(end.encoder_rate_hz, 2)
            if span.classified is not None and span.classified_before is not None and wall > 0:
                rate = round((span.classified["run"] - span.classified_before["run"]) / wall, 2)
            modalities[m.value]["classifier_rate_hz"] = rate
        if m is Modality.VOICE:
            modalities[m.value]["age_from_window_end_p50_ms"] = _pct_ms(
                recorder.fresh_ages_s.get(m), 50
            )
            modalities[m.value]["age_from_window_end_p95_ms"] = _pct_ms(
                recorder.fresh_ages_s.get(m), 95
            )
    rss_samples = span.rss_samples
    rss_values = [r for _, r in rss_samples]
    asr = None
    if transcriber is not None:
        stats = transcriber.stats
        asr = {
            "model": transcriber.model_id,
            "segments": stats.segments,
            "transcribed": stats.transcribed,
            "dropped": stats.dropped,
            "entries": stats.entries,
            "realtime_factor": round(stats.transcribe_s / stats.speech_s, 3)
            if stats.speech_s
            else None,
        }
    plan = span.plan
    cpu = span.cpu_s
    return {
        "asr": asr,
        "variant": variant_name,
        "profile": profile,
        "thread_plan": plan.describe() if plan is not None else None,
        "face_detect_every": config.face_detect_every,
        "face_frames_located": span.located,
        "face_reclassify_after_s": config.face_reclassify_after,
        "face_frames_classified": span.classified,
        "measured_s": round(wall, 1),
        "warmup_s": warmup,
        "video": f"{clip.name}: the sample video at 30 fps, looped",
        "audio": f"{speech.name}: 16 kHz speech at real-time pace, looped",
        "text": f"one typed entry every {TEXT_EVERY_S:g} s",
        "time_to_first_estimate_s": round(recorder.first_estimate_t - started, 3)
        if recorder.first_estimate_t is not None
        else None,
        "estimates": recorder.estimates,
        "estimate_rate_hz": round(recorder.estimates / wall, 2) if wall > 0 else None,
        "modalities": modalities,
        "cpu_cores_used": round(cpu / wall, 2) if wall > 0 else None,
        "cpu_share_of_machine": round(cpu / wall / (os.cpu_count() or 1), 3) if wall > 0 else None,
        "rss_start_mb": rss_values[0] if rss_values else None,
        "rss_end_mb": rss_values[-1] if rss_values else None,
        "rss_delta_mb": round(rss_values[-1] - rss_values[0], 1) if rss_values else None,
        "rss_max_mb": max(rss_values) if rss_values else None,
        "rss_trend_mb_per_min": _rss_slope(rss_samples[len(rss_samples) // 2 :]),
        "rss_slope_mib_per_min": _rss_slope(rss_samples),
        "rss_each_minute_mb": _rss_each_minute(rss_samples),
        # The window's timeline fills its minute of points in the first minute: the
        # slope from then on is the one to read for growth.
        "rss_slope_after_first_minute_mib_per_min": _rss_slope(
            [(t, r) for t, r in rss_samples if t >= 60.0]
        ),
        "threads_left_running": left,
        **window_keys,
        **({"explanations": span.explained} if explain_every_s is not None else {}),
        "load_average_start": load_start,
        "load_average_end": load_average(),
    }


def _s_to_ms(value: float | None) -> float | None:
    return None if value is None else round_ms(value * 1000.0, 1)
