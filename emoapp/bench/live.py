"""A sustained live run: the real :class:`~emoapp.runtime.session.LiveSession` on replayed
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
from emoapp.core.messages import FusedEstimate, Modality

TEXT_EVERY_S = 3.0
WARMUP_S = 8.0


@dataclass
class EstimateRecorder:
    """A session listener that keeps the ages and latencies of the estimates' inputs
    once ``armed`` (after the warm-up). Cheap: it runs on the session's fusion thread."""

    armed: bool = False
    estimates: int = 0
    first_estimate_t: float | None = None
    first_seen: dict[Modality, float] = field(default_factory=dict)
    ages_s: dict[Modality, list[float]] = field(default_factory=dict)
    fresh_ages_s: dict[Modality, list[float]] = field(default_factory=dict)
    latencies_s: dict[Modality, list[float]] = field(default_factory=dict)
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
            self.ages_s.setdefault(m, []).append(age)
            end = prediction.detail.get("window_end") if prediction.detail else None
            fresh = estimate.t - end if isinstance(end, float) else age
            self.fresh_ages_s.setdefault(m, []).append(fresh)
            if self._seen_ids.get(m) != id(prediction):
                self._seen_ids[m] = id(prediction)
                self.latencies_s.setdefault(m, []).append(fresh)

    def on_status(self, status: Any) -> None:
        self.statuses[status.modality] = status


def _pct_ms(values: list[float] | None, q: float) -> float | None:
    if not values:
        return None
    return round_ms(float(np.percentile(values, q)) * 1000.0, 1)


def _slope_mb_per_min(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares trend of RSS over the second half of the run."""
    half = samples[len(samples) // 2 :]
    if len(half) < 3:
        return None
    t = np.array([s[0] for s in half])
    y = np.array([s[1] for s in half])
    if float(np.ptp(t)) <= 0:
        return None
    return round(float(np.polyfit(t, y, 1)[0]) * 60.0, 2)


def _slope_after_warmup(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares trend of RSS (MiB per minute) over every sample after the warm-up."""
    if len(samples) < 3:
        return None
    t = np.array([s[0] for s in samples])
    y = np.array([s[1] for s in samples])
    if float(np.ptp(t)) <= 0:
        return None
    return round(float(np.polyfit(t, y, 1)[0]) * 60.0, 2)


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


def run_live(
    config: BenchConfig,
    encoders: dict[Modality, Any],
    variant_name: str,
    explain_every_s: float | None = None,
    profile: str | None = None,
    transcriber: Any = None,
) -> dict[str, Any]:
    """Run the live session for ``config.duration_s`` (plus the warm-up) and measure it;
    with ``explain_every_s``, with explanations on (every modality, that often).
    The session plans its threads (``config.threads``: the per-worker count by hand) and
    detects faces every ``config.face_detect_every`` frames, as ``emoapp live`` does;
    ``profile`` names the profile whose models these are, for the record. With
    ``transcriber`` (a LiveTranscriber), speech is transcribed too."""
    from emoapp.capture.replay import AudioReplaySource, TextReplaySource, VideoReplaySource
    from emoapp.runtime.session import LiveSession

    clip, speech, lines = live_media(config)
    duration = config.duration_s
    warmup = min(WARMUP_S, max(1.0, duration / 4))
    sources = {
        Modality.FACE: VideoReplaySource(clip, loop=True),
        Modality.VOICE: AudioReplaySource(speech, loop=True),
        Modality.TEXT: TextReplaySource(lines, interval_s=TEXT_EVERY_S, first_s=1.0, loop=True),
    }
    for encoder in encoders.values():
        encoder.load()
    say(f"live: {warmup:g} s warm-up, then {duration:g} s measured")
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
    recorder = EstimateRecorder()
    session.add_listener(recorder)
    load_start = load_average()
    started = clock.now()
    session.start()
    try:
        time.sleep(warmup)
        before = session.metrics()
        classified_before = _classified(encoders.get(Modality.FACE))
        recorder.armed = True
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
        status = session.status()
        plan = session.thread_plan
        detector = getattr(encoders.get(Modality.FACE), "detector", None)
        located = {
            "detected": getattr(detector, "detections", None),
            "tracked": getattr(detector, "tracked", None),
        }
        explained = {
            m.value: {
                "count": c.count,
                "failures": c.failures,
                "mean_ms": _s_to_ms(c.mean_s),
                "max_ms": _s_to_ms(c.max_s),
            }
            for m, c in session.explanation_costs().items()
        }
    finally:
        left = session.stop()
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
            if classified is not None and classified_before is not None and wall > 0:
                rate = round((classified["run"] - classified_before["run"]) / wall, 2)
            modalities[m.value]["classifier_rate_hz"] = rate
        if m is Modality.VOICE:
            modalities[m.value]["age_from_window_end_p50_ms"] = _pct_ms(
                recorder.fresh_ages_s.get(m), 50
            )
            modalities[m.value]["age_from_window_end_p95_ms"] = _pct_ms(
                recorder.fresh_ages_s.get(m), 95
            )
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
    return {
        "asr": asr,
        "variant": variant_name,
        "profile": profile,
        "thread_plan": plan.describe() if plan is not None else None,
        "face_detect_every": config.face_detect_every,
        "face_frames_located": located,
        "face_reclassify_after_s": config.face_reclassify_after,
        "face_frames_classified": classified,
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
        "rss_trend_mb_per_min": _slope_mb_per_min(rss_samples),
        "rss_slope_mib_per_min": _slope_after_warmup(rss_samples),
        "threads_left_running": left,
        **({"explanations": explained} if explain_every_s is not None else {}),
        "load_average_start": load_start,
        "load_average_end": load_average(),
    }


def _s_to_ms(value: float | None) -> float | None:
    return None if value is None else round_ms(value * 1000.0, 1)
