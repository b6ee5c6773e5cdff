"""Face detection and classification cost per frame, before (Haar cascade, mini-Xception
alone) and after (YuNet, the face pair), on the same frames of the sample video.

Part of ``emoapp bench --profile NAME`` (the ``faces`` entry of its record): every
frame of ``resources/samples/face_speech.mp4`` goes through each detector once (after
one warm-up frame), timed per frame, with the count of frames that carry more than one
box (the Haar cascade's false box on the astronaut's shoulder); then each embedded face
classifier is timed on the primary face of each frame, as one face per call (what the
live session does per frame).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from emoapp.bench.common import say


def sample_frames() -> list[np.ndarray]:
    """The RGB frames of the sample video (110 at 480 x 360)."""
    from emoapp.capture.media import iter_video_frames
    from emoapp.registry import data_dir

    path = data_dir("resources") / "samples" / "face_speech.mp4"
    return [frame.image for frame in iter_video_frames(path)]


def _timed(
    run: Callable[[np.ndarray], Any], frames: Sequence[np.ndarray]
) -> tuple[list[float], list[Any]]:
    run(frames[0])  # warm-up
    times, outputs = [], []
    for image in frames:
        started = time.perf_counter()
        outputs.append(run(image))
        times.append((time.perf_counter() - started) * 1000.0)
    return times, outputs


def _summary(times: Sequence[float]) -> dict[str, float]:
    t = np.asarray(times)
    return {
        "median_ms": round(float(np.median(t)), 2),
        "mean_ms": round(float(t.mean()), 2),
        "p95_ms": round(float(np.percentile(t, 95)), 2),
    }


def measure_faces(frames: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """Detector and classifier times per frame (see the module docstring)."""
    import cv2

    from emoapp.core.messages import Modality, VideoFrame
    from emoapp.encoders.embedded.face import FacePairEncoder, member_encoder
    from emoapp.encoders.face import FaceConfig, FaceDetector, YuNetDetector
    from emoapp.registry import resolve_model

    images = list(frames) if frames is not None else sample_frames()
    if not images:
        return {"status": "failed", "reason": "no frames"}
    height, width = images[0].shape[:2]
    out: dict[str, Any] = {
        "input": f"{len(images)} frames of the sample video, {width}x{height}",
        "opencv_threads": cv2.getNumThreads(),
        "detectors": {},
        "classifiers": {},
    }
    yunet_detector = YuNetDetector.from_config(FaceConfig())
    detectors: dict[str, FaceDetector | YuNetDetector] = {
        "haar (before)": FaceDetector.from_config(FaceConfig(detector="haar")),
        "yunet (after)": yunet_detector,
    }
    found: dict[str, list[Any]] = {}
    for name, detector in detectors.items():
        say(f"faces: timing the {name} detector")
        times, boxes = _timed(detector.detect, images)
        found[name] = boxes
        out["detectors"][name] = {
            **_summary(times),
            "frames_with_more_than_one_box": sum(len(b) > 1 for b in boxes),
            "frames_without_a_box": sum(len(b) == 0 for b in boxes),
        }
    haar = out["detectors"]["haar (before)"]["median_ms"]
    yunet = out["detectors"]["yunet (after)"]["median_ms"]
    out["yunet_over_haar"] = round(yunet / haar, 3) if haar > 0 else None

    located = [yunet_detector.detect_landmarked(image) for image in images]
    for model in (
        "embedded/face-minixception",
        "embedded/face-mobilefacenet",
        "embedded/face-pair",
    ):
        spec = resolve_model(Modality.FACE, model)
        if spec is None:
            continue
        encoder = member_encoder(spec, FaceConfig(), yunet_detector)
        encoder.load()
        say(f"faces: timing {model} on one face a frame")
        rows = [
            encoder.face_rows(image, [faces[0][0]], [faces[0][2]])
            for image, faces in zip(images, located, strict=True)
            if faces
        ]
        times, _ = _timed(encoder.classify_rows, rows)  # type: ignore[arg-type]
        entry: dict[str, Any] = {**_summary(times), "faces": len(rows)}
        if isinstance(encoder, FacePairEncoder):
            entry["members"] = {
                m.model_id: float(w) for m, w in zip(encoder.members, encoder.weights, strict=True)
            }
        runtime = encoder.detail_extra().get("runtime")
        if runtime:
            entry["runtime"] = runtime
        out["classifiers"][model] = entry
        # the whole encoder call per frame (detection, crops, classification)
        whole = [VideoFrame(i / 30.0, image, i) for i, image in enumerate(images)]
        times, _ = _timed(_one_frame(encoder), whole)  # type: ignore[arg-type]
        entry["encode_per_frame"] = _summary(times)
    return out


def _one_frame(encoder: Any) -> Callable[[Any], Any]:
    return lambda frame: encoder.encode([frame])


def render_faces(faces: dict[str, Any]) -> list[str]:
    """The faces part as text lines."""
    if not faces or "detectors" not in faces:
        return [f"faces: {faces.get('status', 'not measured')} {faces.get('reason', '')}".rstrip()]
    lines = [f"faces ({faces['input']}; OpenCV threads {faces['opencv_threads']}):"]
    for name, d in faces["detectors"].items():
        lines.append(
            f"  detector {name}: median {d['median_ms']} ms, mean {d['mean_ms']} ms, "
            f"p95 {d['p95_ms']} ms a frame; {d['frames_with_more_than_one_box']} frames with "
            f"more than one box, {d['frames_without_a_box']} with none"
        )
    lines.append(f"  YuNet / Haar (median): {faces['yunet_over_haar']}")
    for name, c in faces["classifiers"].items():
        extra = f" ({c['runtime']})" if "runtime" in c else ""
        lines.append(
            f"  classifier {name}{extra}: median {c['median_ms']} ms a face, p95 {c['p95_ms']} ms; "
            f"whole encoder call median {c['encode_per_frame']['median_ms']} ms a frame"
        )
    return lines
