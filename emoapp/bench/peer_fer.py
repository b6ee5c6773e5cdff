"""Times the ``fer`` package (Justin Shenk's facial expression recogniser) on frames.

Run by ``emoapp bench`` with an interpreter that can import ``fer`` (usually a separate
virtual environment: fer needs TensorFlow). It uses only the standard library, numpy and
fer, never emoapp, so it runs there as a plain script::

    PYTHON peer_fer.py FRAMES.npy WARMUP

``FRAMES.npy`` holds RGB uint8 frames (N x H x W x 3). fer runs as its users run it by
default (OpenCV Haar face detection, the quantised TFLite emotion model it ships). Prints
one JSON line: per-frame milliseconds (wall and process CPU) of ``detect_emotions`` and
of face finding alone.
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    import numpy as np

    started = time.perf_counter()
    import fer
    from fer.fer import FER

    import_s = time.perf_counter() - started
    frames = np.load(argv[0])
    warmup = int(argv[1]) if len(argv) > 1 else 2
    detector = FER()
    bgr = [np.ascontiguousarray(f[:, :, ::-1]) for f in frames]
    for image in bgr[:warmup]:
        detector.detect_emotions(image)
    total, total_cpu, finding, finding_cpu, faces = [], [], [], [], []
    for image in bgr:
        c0, t0 = time.process_time(), time.perf_counter()
        found = detector.detect_emotions(image)
        c1, t1 = time.process_time(), time.perf_counter()
        detector.find_faces(image, bgr=True)
        c2, t2 = time.process_time(), time.perf_counter()
        total.append((t1 - t0) * 1000.0)
        total_cpu.append((c1 - c0) * 1000.0)
        finding.append((t2 - t1) * 1000.0)
        finding_cpu.append((c2 - c1) * 1000.0)
        faces.append(len(found))
    try:
        import tensorflow as tf

        tf_version = tf.__version__
    except ImportError:
        tf_version = None
    print(
        json.dumps(
            {
                "fer_version": getattr(fer, "__version__", None),
                "tensorflow_version": tf_version,
                "model": "fer default: Haar cascade + quantised TFLite emotion CNN (shipped)",
                "import_s": round(import_s, 3),
                "frames": len(bgr),
                "faces_found_median": float(np.median(faces)),
                "detect_emotions_ms": total,
                "detect_emotions_cpu_ms": total_cpu,
                "find_faces_ms": finding,
                "find_faces_cpu_ms": finding_cpu,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
