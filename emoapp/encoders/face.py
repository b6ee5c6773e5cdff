"""Face encoder: find the faces in a video frame and classify each one's expression.

Per frame: make it RGB uint8 (grayscale and RGBA are converted; what cannot be converted
gives a :class:`~emoapp.core.messages.NoPrediction` that says why), find faces with a
:class:`FaceLocator` (by default :class:`YuNetDetector`, OpenCV Zoo's YuNet CNN run with
``cv2.FaceDetectorYN``, which also gives 5 landmarks per face; OpenCV's Haar frontal-face
cascade, :class:`FaceDetector`, only when the YuNet file cannot load, and it says so),
crop each face with a margin (or align it on its landmarks,
:mod:`emoapp.encoders.face_align`), and classify every face of every frame in the batch
together. Each face is reported as a :class:`~emoapp.core.messages.FaceDetection` (with
its track id when a :class:`TrackingLocator` follows the faces); the *primary* face (the
followed one when a person picked one, else the largest, or the one nearest the centre)
gives the prediction's probabilities.

What is estimated is the displayed facial expression, not what the person feels.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

from emoapp.core.errors import MissingDependencyError, ModelLoadError
from emoapp.core.messages import (
    EncoderOutput,
    FaceDetection,
    Modality,
    ModalityPrediction,
    NoPrediction,
    VideoFrame,
)
from emoapp.encoders.base import EncoderConfig, Prepared, TransformersEncoder

Box = tuple[int, int, int, int]
"""A face box in pixels: (x, y, width, height)."""

Primary = Literal["largest", "center"]

NO_FACE = "no face found"

log = logging.getLogger(__name__)

DETECTORS = ("yunet", "haar", "image")
"""``yunet`` (the default), ``haar`` (OpenCV's cascade), ``image`` (the whole image is
one face crop, as in FER2013: :class:`ImageFaceLocator`)."""


@dataclass
class FaceConfig:
    """How the face encoder finds, crops and chooses faces."""

    margin: float = 0.2
    """Added on every side of a face box before cropping, as a share of the box's size
    (clipped to the frame)."""
    min_face: int = 40
    """Smallest face to find, in pixels of the original frame."""
    primary: Primary = "largest"
    """Which face gives the prediction: the ``largest``, or the one nearest the ``center``."""
    max_faces: int = 8
    """At most this many faces per frame are classified (the largest ones)."""
    detector: str = "yunet"
    """Which face detector to use: ``yunet`` (falls back to ``haar`` when its file
    cannot load), ``haar``, or ``image`` (each image is already one face crop)."""
    score_threshold: float = 0.6
    """YuNet: lowest face score kept (0..1)."""
    detector_max_side: int = 640
    """The detector sees a copy whose longest side is at most this (0: full resolution)."""
    scale_factor: float = 1.1
    """Haar cascade: scale step between detection passes."""
    min_neighbors: int = 5
    """Haar cascade: overlapping hits needed to accept a face (higher: fewer false faces)."""

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ValueError("margin must not be negative")
        if self.min_face < 1 or self.max_faces < 1:
            raise ValueError("min_face and max_faces must be at least 1")
        if self.primary not in ("largest", "center"):
            raise ValueError(f"primary must be 'largest' or 'center', not {self.primary!r}")
        if self.detector_max_side < 0:
            raise ValueError("detector_max_side must not be negative")
        if self.scale_factor <= 1.0:
            raise ValueError("scale_factor must be greater than 1")
        if self.detector not in DETECTORS:
            raise ValueError(
                f"unknown face detector {self.detector!r}; choose one of {', '.join(DETECTORS)}"
            )
        if not 0.0 < self.score_threshold < 1.0:
            raise ValueError("score_threshold must be in (0, 1)")


# --- detection ------------------------------------------------------------------------


@runtime_checkable
class FaceLocator(Protocol):
    """Anything that finds faces: boxes in pixels of an RGB uint8 (H x W x 3) image."""

    name: str

    def detect(self, image: np.ndarray) -> list[Box]: ...


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("opencv-python-headless", "face detection") from exc
    return cv2


class FaceDetector:
    """OpenCV's Haar frontal-face cascade, on a downscaled, histogram-equalised gray copy.

    Fast and dependency-free, but it misses profiles and tilted heads. Thread-safe (calls
    are serialised; OpenCV's cascade is not documented as re-entrant).

    With ``eye_check`` the cascade's occasional hits on plain background are filtered:
    when it finds more than one face, each is checked with the Haar eye cascade in its
    upper half, and when any shows an eye the eyeless ones are dropped (when none does,
    as with sunglasses, all are kept).
    """

    name = "haar"
    CASCADE = "haarcascade_frontalface_default.xml"
    EYE_CASCADE = "haarcascade_eye.xml"

    def __init__(
        self,
        min_face: int = 40,
        max_side: int = 640,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        cascade: str | Path | None = None,
        eye_check: bool = False,
    ) -> None:
        cv2 = _import_cv2()
        self._cv2 = cv2
        builtin = Path(cv2.data.haarcascades)
        self._classifier = self._load_cascade(Path(cascade) if cascade else builtin / self.CASCADE)
        self._eyes: Any = self._load_cascade(builtin / self.EYE_CASCADE) if eye_check else None
        self._lock = threading.Lock()
        self._scored_lock = threading.Lock()
        self.last_scores: list[float] = []
        self.min_face = int(min_face)
        self.max_side = int(max_side)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.fallback_reason: str | None = None
        """Why this cascade stands in for YuNet (None: it was asked for)."""

    def _load_cascade(self, path: Path) -> Any:
        classifier = self._cv2.CascadeClassifier(str(path))
        if classifier.empty():
            raise MissingDependencyError(
                "opencv-python-headless", f"face detection (cascade {path} not found)"
            )
        return classifier

    @property
    def eye_check(self) -> bool:
        return self._eyes is not None

    @classmethod
    def from_config(cls, config: FaceConfig) -> FaceDetector:
        return cls(
            config.min_face, config.detector_max_side, config.scale_factor, config.min_neighbors
        )

    def detect(self, image: np.ndarray) -> list[Box]:
        """Face boxes (x, y, w, h) in pixels of an RGB ``image``."""
        return self.detect_gray(self._cv2.cvtColor(image, self._cv2.COLOR_RGB2GRAY))

    def detect_gray(self, gray: np.ndarray) -> list[Box]:
        """Face boxes (x, y, w, h) in pixels of a uint8 grayscale image."""
        cv2 = self._cv2
        full = gray
        height, width = gray.shape[:2]
        scale = 1.0
        longest = max(height, width)
        if self.max_side and longest > self.max_side:
            scale = self.max_side / longest
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        min_size = max(1, round(self.min_face * scale))
        with self._lock:
            found, votes = self._classifier.detectMultiScale2(
                gray,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(min_size, min_size),
            )
        candidates = np.asarray(found, dtype=np.float64).reshape(-1, 4)
        votes = np.asarray(votes, dtype=np.float64).ravel()
        scored: list[tuple[Box, float]] = []
        for (x, y, w, h), vote in zip(candidates / scale, votes, strict=True):
            box = _clip_box(round(x), round(y), round(w), round(h), width, height)
            if box is not None:
                scored.append((box, float(vote)))
        if self._eyes is not None and len(scored) > 1:
            with_eyes = [(box, vote) for box, vote in scored if self._has_eye(full, box)]
            scored = with_eyes or scored
        self.last_scores = [vote for _, vote in scored]
        return [box for box, _ in scored]

    def _has_eye(self, gray: np.ndarray, box: Box) -> bool:
        cv2 = self._cv2
        x, y, w, h = box
        upper = gray[y : y + h // 2, x : x + w]
        if upper.size == 0:
            return False
        # eyes are searched in the face scaled to 160 px wide, whatever its size
        upper = cv2.equalizeHist(cv2.resize(upper, (160, 80), interpolation=cv2.INTER_LINEAR))
        with self._lock:
            eyes = self._eyes.detectMultiScale(
                upper, scaleFactor=1.1, minNeighbors=3, minSize=(16, 16)
            )
        return len(eyes) > 0

    def detect_scored(self, image: np.ndarray) -> list[tuple[Box, float]]:
        """Faces with their detection strength (the cascade's count of overlapping hits:
        a real face gathers many, a false one on textured background few)."""
        with self._scored_lock:
            boxes = self.detect(image)
            return list(zip(boxes, self.last_scores, strict=True))


Landmarked = tuple[Box, float, np.ndarray | None]
"""A face found: its box, its detection strength, and its 5 landmarks (5 x 2 pixels:
right eye, left eye, nose tip, right and left mouth corner) or None."""


def find_faces(detector: object, image: np.ndarray) -> list[Landmarked]:
    """Faces of an RGB image with strengths and landmarks, from any detector: one with
    ``detect_landmarked`` gives landmarks, others give None."""
    landmarked = getattr(detector, "detect_landmarked", None)
    if landmarked is not None:
        return list(landmarked(image))
    detect_scored = getattr(detector, "detect_scored", None)
    if detect_scored is not None:
        return [(box, float(s), None) for box, s in detect_scored(image)]
    return [(box, 1.0, None) for box in detector.detect(image)]  # type: ignore[attr-defined]


YUNET_FOLDER = "face-yunet"
YUNET_FILE = "face_detection_yunet_2023mar.onnx"


def yunet_path() -> Path:
    """Where the shipped YuNet model is (``models/embedded/face-yunet``)."""
    from emoapp.registry import data_dir

    return data_dir("models") / "embedded" / YUNET_FOLDER / YUNET_FILE


class YuNetDetector:
    """OpenCV Zoo's YuNet face detector (``face_detection_yunet_2023mar.onnx``, MIT; a
    small CNN run by ``cv2.FaceDetectorYN``): a box, a score and 5 landmarks per face.

    The image is downscaled so that its longest side is at most ``max_side`` (0: never).
    Faces smaller than ``min_face`` pixels (of the original image) are dropped. Raises
    :class:`ModelLoadError` when the ONNX file is missing, fails its checksum (the
    shipped one is verified against ``checksums.sha256``) or does not load. Calls are
    serialised (one ``FaceDetectorYN`` whose input size changes with the frame)."""

    name = "yunet"

    def __init__(
        self,
        path: str | Path | None = None,
        min_face: int = 40,
        max_side: int = 640,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 50,
    ) -> None:
        cv2 = _import_cv2()
        self._cv2 = cv2
        model = Path(path) if path is not None else yunet_path()
        if path is None:
            from emoapp.encoders.embedded.artefacts import verify

            verify(model.parent)
        if not model.is_file():
            raise ModelLoadError(f"the YuNet face detector {model} is missing")
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(model), "", (320, 320), score_threshold, nms_threshold, top_k
            )
        except cv2.error as exc:
            raise ModelLoadError(
                f"the YuNet face detector {model} cannot be loaded: {_first_line(exc)}"
            ) from exc
        self.path = model
        self._size: tuple[int, int] = (320, 320)
        self._lock = threading.Lock()
        self.min_face = int(min_face)
        self.max_side = int(max_side)

    @classmethod
    def from_config(cls, config: FaceConfig, path: str | Path | None = None) -> YuNetDetector:
        return cls(
            path,
            config.min_face,
            config.detector_max_side,
            config.score_threshold,
        )

    def detect(self, image: np.ndarray) -> list[Box]:
        return [box for box, _, _ in self.detect_landmarked(image)]

    def detect_scored(self, image: np.ndarray) -> list[tuple[Box, float]]:
        return [(box, score) for box, score, _ in self.detect_landmarked(image)]

    def detect_landmarked(self, image: np.ndarray) -> list[Landmarked]:
        """Faces of an RGB uint8 ``image``: box, score (0..1), landmarks (5 x 2)."""
        cv2 = self._cv2
        height, width = image.shape[:2]
        scale = 1.0
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        longest = max(height, width)
        if self.max_side and longest > self.max_side:
            scale = self.max_side / longest
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        size = (bgr.shape[1], bgr.shape[0])
        with self._lock:
            if size != self._size:
                self._net.setInputSize(size)
                self._size = size
            _, found = self._net.detect(bgr)
        out: list[Landmarked] = []
        if found is None:
            return out
        for row in np.asarray(found, dtype=np.float64).reshape(-1, 15):
            x, y, w, h = row[:4] / scale
            if min(w, h) < self.min_face:
                continue
            box = _clip_box(round(x), round(y), round(w), round(h), width, height)
            if box is None:
                continue
            out.append((box, float(row[14]), row[4:14].reshape(5, 2) / scale))
        return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


CROP_LANDMARKS = np.array(
    [[0.3327, 0.3902], [0.6393, 0.3923], [0.4864, 0.5846], [0.3718, 0.7157], [0.5966, 0.7206]]
)
"""Where the 5 landmarks sit in a typical FER2013 face crop, as shares of its width and
height: the median of YuNet's landmarks on the 363 of 3,000 FER2013 *train* crops (a
seeded sample) in which :class:`ImageFaceLocator` found a face."""


class ImageFaceLocator:
    """For images that already are one face crop each (FER2013's 48 x 48 faces): the
    whole image is the face. Its landmarks come from YuNet run on a copy padded by
    ``PAD`` and upscaled to ``SIDE`` pixels (at 48 pixels the face is below YuNet's
    reach); when YuNet finds no face there (most FER2013 images: they are small and
    soft), they are :data:`CROP_LANDMARKS` scaled to the image. :attr:`with_landmarks`
    and :attr:`estimated` count how often each happened."""

    name = "image"
    PAD = 0.1
    """Border added on every side (share of the image size, replicated edge pixels)."""
    SIDE = 120
    """The padded copy is resized so that its longest side is this many pixels."""

    def __init__(self, landmarker: YuNetDetector | None) -> None:
        self.landmarker = landmarker
        self._lock = threading.Lock()
        self.with_landmarks = 0
        self.estimated = 0

    def detect(self, image: np.ndarray) -> list[Box]:
        return [box for box, _, _ in self.detect_landmarked(image)]

    def detect_landmarked(self, image: np.ndarray) -> list[Landmarked]:
        height, width = image.shape[:2]
        box: Box = (0, 0, width, height)
        marks = self._landmarks(image)
        with self._lock:
            if marks is None:
                self.estimated += 1
            else:
                self.with_landmarks += 1
        if marks is None:
            marks = CROP_LANDMARKS * np.array([width, height], dtype=np.float64)
        return [(box, 1.0, marks)]

    def _landmarks(self, image: np.ndarray) -> np.ndarray | None:
        if self.landmarker is None:
            return None
        cv2 = _import_cv2()
        height, width = image.shape[:2]
        pad_y, pad_x = round(height * self.PAD), round(width * self.PAD)
        padded = cv2.copyMakeBorder(image, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_REPLICATE)
        scale = self.SIDE / max(padded.shape[:2])
        big = cv2.resize(
            padded,
            (round(padded.shape[1] * scale), round(padded.shape[0] * scale)),
            interpolation=cv2.INTER_CUBIC,
        )
        found = [f for f in self.landmarker.detect_landmarked(big) if f[2] is not None]
        if not found:
            return None
        _, _, marks = max(found, key=lambda f: f[1])
        assert marks is not None
        return marks / scale - np.array([pad_x, pad_y], dtype=np.float64)


class TrackingLocator:
    """Finds faces with ``inner`` on one frame in ``every`` and tracks them in between.

    For a live stream fed in order: the detector runs on the first frame, then every
    ``every`` frames; in between, each face found is looked for near where it was (a
    window one box-size wider on every side) by normalised cross-correlation with its
    look when last detected (``cv2.matchTemplate``, on a copy whose longest side is
    ``track_max_side``: a millisecond or so); its landmarks move with its box. When any
    face's best match scores under ``min_match`` (it turned away, left, or the scene cut)
    or the frame's size changes, the frame is detected afresh. :meth:`locate_scored`
    says which happened: ``detected`` or ``tracked``.

    Every face gets a **track id** (1, 2, ...) that it keeps while it is followed: a face
    found by a fresh detection takes the id of the face it overlaps most (intersection
    over union at least ``MATCH_IOU``) among those of the frame before, else a new one.

    Calls are serialised (one tracking state); meant for one stream at a time."""

    MATCH_IOU = 0.3

    def __init__(
        self,
        inner: FaceLocator,
        every: int = 5,
        min_match: float = 0.6,
        track_max_side: int = 320,
    ) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        if not 0.0 < min_match <= 1.0:
            raise ValueError("min_match must be in (0, 1]")
        self._cv2 = _import_cv2()
        self.inner = inner
        self.every = int(every)
        self.min_match = float(min_match)
        self.track_max_side = int(track_max_side)
        self.name = f"{getattr(inner, 'name', 'custom')}+track"
        self.fallback_reason: str | None = getattr(inner, "fallback_reason", None)
        self._lock = threading.Lock()
        self.detections = 0
        self.tracked = 0
        self._next_id = 1
        self.reset()

    def reset(self) -> None:
        """Forget the faces: the next frame is detected (track ids are not reused)."""
        self._faces: list[Landmarked] = []
        self._ids: list[int] = []
        self._templates: list[np.ndarray] = []
        self._size: tuple[int, int] | None = None
        self._since = 0

    def detect(self, image: np.ndarray) -> list[Box]:
        return [box for box, _ in self.locate_scored(image)[0]]

    def detect_scored(self, image: np.ndarray) -> list[tuple[Box, float]]:
        return self.locate_scored(image)[0]

    def locate_scored(self, image: np.ndarray) -> tuple[list[tuple[Box, float]], str]:
        """The faces of an RGB uint8 ``image`` with their strengths, and ``detected``
        or ``tracked``."""
        faces, _, how = self.locate_landmarked(image)
        return [(box, score) for box, score, _ in faces], how

    def locate_landmarked(self, image: np.ndarray) -> tuple[list[Landmarked], list[int], str]:
        """The faces of an RGB uint8 ``image`` (box, strength, landmarks), their track
        ids, and ``detected`` or ``tracked``."""
        with self._lock:
            small, scale = self._small_gray(image)
            size = (image.shape[1], image.shape[0])
            if self._templates and size == self._size and self._since < self.every - 1:
                tracked = self._track(small, scale, size)
                if tracked is not None:
                    self._since += 1
                    self.tracked += 1
                    self._faces = tracked
                    return list(tracked), list(self._ids), "tracked"
            found = find_faces(self.inner, image)
            self.detections += 1
            self._ids = self._match_ids(found)
            self._size = size
            self._since = 0
            self._faces = found
            self._templates = [self._template(small, scale, box) for box, _, _ in found]
            return list(found), list(self._ids), "detected"

    def _match_ids(self, found: Sequence[Landmarked]) -> list[int]:
        """Track ids for freshly detected faces: the id of the best-overlapping face held
        (each used once, best overlaps first), else a new id."""
        pairs = sorted(
            (
                (iou(box, old), i, j)
                for i, (box, _, _) in enumerate(found)
                for j, (old, _, _) in enumerate(self._faces)
            ),
            reverse=True,
        )
        ids: list[int | None] = [None] * len(found)
        used: set[int] = set()
        for overlap, i, j in pairs:
            if overlap < self.MATCH_IOU:
                break
            if ids[i] is None and j not in used:
                ids[i] = self._ids[j]
                used.add(j)
        out = []
        for given in ids:
            if given is None:
                given = self._next_id
                self._next_id += 1
            out.append(given)
        return out

    def _small_gray(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        cv2 = self._cv2
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        height, width = gray.shape[:2]
        longest = max(height, width)
        if not self.track_max_side or longest <= self.track_max_side:
            return gray, 1.0
        scale = self.track_max_side / longest
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        return cv2.resize(gray, size, interpolation=cv2.INTER_AREA), scale

    @staticmethod
    def _scaled(box: Box, scale: float) -> Box:
        x, y, w, h = box
        return (
            round(x * scale),
            round(y * scale),
            max(1, round(w * scale)),
            max(1, round(h * scale)),
        )

    def _template(self, small: np.ndarray, scale: float, box: Box) -> np.ndarray:
        return crop(small, self._scaled(box, scale)).copy()

    def _track(
        self, small: np.ndarray, scale: float, size: tuple[int, int]
    ) -> list[Landmarked] | None:
        cv2 = self._cv2
        out: list[Landmarked] = []
        height, width = small.shape[:2]
        for (box, strength, marks), template in zip(self._faces, self._templates, strict=True):
            th, tw = template.shape[:2]
            if th < 4 or tw < 4:
                return None
            x, y, w, h = self._scaled(box, scale)
            area = _clip_box(x - w, y - h, 3 * w, 3 * h, width, height)
            if area is None or area[2] < tw or area[3] < th:
                return None
            window = crop(small, area)
            scores = cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED)
            _, best, _, (bx, by) = cv2.minMaxLoc(scores)
            if not np.isfinite(best) or best < self.min_match:
                return None
            moved = _clip_box(
                round((area[0] + bx) / scale),
                round((area[1] + by) / scale),
                box[2],
                box[3],
                size[0],
                size[1],
            )
            if moved is None:
                return None
            shifted = None
            if marks is not None:
                shifted = marks + np.array([moved[0] - box[0], moved[1] - box[1]], dtype=float)
            out.append((moved, strength, shifted))
        return out


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not touch)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = min(ax + aw, bx + bw) - max(ax, bx)
    h = min(ay + ah, by + bh) - max(ay, by)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / float(aw * ah + bw * bh - inter)


def track_faces(encoder: object, every: int) -> bool:
    """Make a face encoder (anything with a ``detector``) detect faces on one frame in
    ``every`` and track them in between; a tracker already there is reset and set to
    ``every``. False when the encoder has no detector (yet) or ``every`` is 1 or less."""
    detector = getattr(encoder, "detector", None)
    if detector is None or every <= 1:
        return False
    if isinstance(detector, TrackingLocator):
        with detector._lock:
            detector.every = int(every)
            detector.reset()
        return True
    encoder.detector = TrackingLocator(detector, every)  # type: ignore[attr-defined]
    return True


# --- reusing a classification -----------------------------------------------------------

REUSE_MAX_AGE_S = 1.0
"""A tracked face keeps its classification for at most this long (seconds;
``--face-reclassify-after``)..."""
REUSE_MAX_SHIFT = 0.1
"""... and only while its box's centre moved at most this share of the face's size since
the frame it was classified on, and its width and height changed at most this share."""
REUSE_MAX_DIFF = 6.0
"""... and its look changed at most this much: the mean absolute difference, in grey
levels of 255, of its 32 x 32 grey crop against the crop last classified, in the block
of a 4 x 4 split that changed most. These thresholds are chosen by
``scripts/measure_face_reuse.py`` (README, "Live on a CPU"): 51 % of frames reused with
98.9 % top-label agreement with a fresh classification on the sample video and
synthetic changes."""
THUMB_SIDE = 32
THUMB_GRID = 4
"""The face's look is compared block by block (THUMB_GRID x THUMB_GRID blocks); the
largest block's mean absolute difference counts, so a change in one part of the face
(the mouth) is not averaged away by the rest."""


@dataclass
class _Classified:
    """A face as it was when last classified: its box, small grey crop, output, time."""

    box: Box
    thumb: np.ndarray
    output: np.ndarray
    t: float
    size: tuple[int, int]
    """The frame's (width, height)."""


@dataclass
class ReusePlan:
    """Per face of one frame: the earlier output to reuse (None: classify it) and how old
    it is, with what :meth:`ClassifyReuse.remember` needs afterwards."""

    reused: list[np.ndarray | None]
    ages: list[float]
    thumbs: list[np.ndarray]
    t: float | None

    @property
    def fresh(self) -> list[int]:
        """Indices of the faces that must be classified."""
        return [i for i, r in enumerate(self.reused) if r is None]

    @property
    def all_reused(self) -> bool:
        return bool(self.reused) and all(r is not None for r in self.reused)


def face_thumb(image: np.ndarray, box: Box) -> np.ndarray:
    """A face's look for comparing frames: its box (no margin) as THUMB_SIDE x THUMB_SIDE
    float32 grey levels (0-255)."""
    cv2 = _import_cv2()
    face = crop(image, box)
    if face.ndim == 3:
        face = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(face, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32)


def look_change(old: np.ndarray, new: np.ndarray, grid: int | None = None) -> float:
    """How much a face's look changed between two thumbs (:func:`face_thumb`): the
    largest mean absolute difference, in grey levels, over a ``grid`` x ``grid`` split
    of the face (default THUMB_GRID)."""
    g = THUMB_GRID if grid is None else grid
    diff = np.abs(new - old)
    side = diff.shape[0] // g
    blocks = diff[: side * g, : side * g].reshape(g, side, g, side)
    return float(blocks.mean(axis=(1, 3)).max())


def box_change(old: Box, new: Box) -> tuple[float, float]:
    """How far ``new`` is from ``old``: the centre shift and the larger relative change of
    width or height, both as shares of ``old``'s size."""
    ox, oy, ow, oh = old
    nx, ny, nw, nh = new
    size = float(max(ow, oh, 1))
    shift = float(np.hypot((nx + nw / 2.0) - (ox + ow / 2.0), (ny + nh / 2.0) - (oy + oh / 2.0)))
    scale = max(abs(nw - ow) / max(ow, 1), abs(nh - oh) / max(oh, 1))
    return shift / size, float(scale)


class ClassifyReuse:
    """Classify a tracked face only when it moved, changed, or enough time passed.

    For a live stream fed in order, with a :class:`TrackingLocator`: on a frame whose faces
    were *tracked*, a face whose box is within ``max_shift`` (centre shift and size
    change, as shares of the face's size) of its box when last classified, whose crop
    (32 x 32 grey) differs from the crop last classified by at most ``max_diff`` grey
    levels on average in every block of a 4 x 4 split (:func:`look_change`), and whose
    last classification is younger than ``max_age_s`` (by the frames' own times), keeps
    that classification: the classifier does not run on it. A detected frame is always
    classified. Faces are matched to their earlier selves by box (the nearest centre).
    :attr:`run` and :attr:`reused` count frames with faces: ``reused`` when none of its
    faces was classified.

    Calls are serialised (one state); meant for one stream at a time."""

    def __init__(
        self,
        max_age_s: float = REUSE_MAX_AGE_S,
        max_shift: float = REUSE_MAX_SHIFT,
        max_diff: float = REUSE_MAX_DIFF,
    ) -> None:
        if not max_age_s > 0 or not np.isfinite(max_age_s):
            raise ValueError("max_age_s must be a positive number of seconds")
        if max_shift < 0 or max_diff < 0:
            raise ValueError("max_shift and max_diff must not be negative")
        self.max_age_s = float(max_age_s)
        self.max_shift = float(max_shift)
        self.max_diff = float(max_diff)
        self._lock = threading.Lock()
        self.run = 0
        self.reused = 0
        self.reset()

    def reset(self) -> None:
        """Forget the faces: the next frame is classified."""
        self._faces: list[_Classified] = []

    def plan(self, image: np.ndarray, info: FrameFaces, t: float | None) -> ReusePlan:
        """Which faces of ``info`` (found in the RGB ``image`` of time ``t``; None: no
        time, never reused) may keep their earlier classification."""
        thumbs = [face_thumb(image, box) for box in info.boxes]
        reused: list[np.ndarray | None] = [None] * len(info.boxes)
        ages = [0.0] * len(info.boxes)
        if info.located != "tracked" or t is None:
            return ReusePlan(reused, ages, thumbs, t)
        with self._lock:
            free = list(self._faces)
        for i, box in enumerate(info.boxes):
            if not free:
                break
            changes = [box_change(old.box, box) for old in free]
            j = min(range(len(free)), key=lambda k: changes[k][0])
            old = free[j]
            shift, scale = changes[j]
            age = t - old.t
            if (
                shift <= self.max_shift
                and scale <= self.max_shift
                and 0.0 <= age < self.max_age_s
                and old.size == info.size
                and look_change(old.thumb, thumbs[i]) <= self.max_diff
            ):
                reused[i] = old.output
                ages[i] = age
                free.pop(j)
        return ReusePlan(reused, ages, thumbs, t)

    def remember(self, info: FrameFaces, plan: ReusePlan, outputs: Sequence[np.ndarray]) -> None:
        """After classifying: ``outputs`` holds every face's output (fresh or reused);
        the fresh ones become what later frames are compared with."""
        faces: list[_Classified] = []
        with self._lock:
            previous = {id(f.output): f for f in self._faces}
            for box, thumb, earlier, output in zip(
                info.boxes, plan.thumbs, plan.reused, outputs, strict=True
            ):
                if earlier is not None:
                    if id(earlier) in previous:  # (else: reset meanwhile, forget it)
                        faces.append(previous[id(earlier)])
                elif plan.t is not None:
                    output = np.array(output, copy=True)
                    faces.append(_Classified(box, thumb, output, plan.t, info.size))
            self._faces = faces
            if plan.all_reused:
                self.reused += 1
            elif info.boxes:
                self.run += 1


def reuse_classes(encoder: object, max_age_s: float) -> bool:
    """Make a face encoder (one with a ``reuse`` slot) keep a tracked, unchanged face's
    classification for up to ``max_age_s`` seconds (:class:`ClassifyReuse`); 0 turns it
    off. One already there is reset and set to ``max_age_s``. False when the encoder
    cannot, or it was turned off."""
    if not hasattr(encoder, "reuse"):
        return False
    if max_age_s < 0:
        raise ValueError("max_age_s must not be negative")
    if max_age_s == 0:
        encoder.reuse = None
        return False
    current = encoder.reuse
    if isinstance(current, ClassifyReuse):
        with current._lock:
            current.max_age_s = float(max_age_s)
            current.reset()
        return True
    encoder.reuse = ClassifyReuse(max_age_s)
    return True


def follow_face(encoder: object, track_id: int | None) -> bool:
    """Make a face encoder's primary face the one with ``track_id`` while it is tracked
    (None: back to the configured rule). False when the encoder cannot follow faces."""
    if not hasattr(encoder, "follow"):
        return False
    if track_id is not None and (not isinstance(track_id, int) or track_id < 1):
        raise ValueError(f"a track id is a whole number from 1, not {track_id!r}")
    encoder.follow = track_id
    return True


def make_detector(config: FaceConfig, yunet: str | Path | None = None) -> FaceLocator:
    """The face detector ``config.detector`` names (``yunet``: the shipped file, or
    ``yunet`` when given). When YuNet cannot load, the Haar cascade takes its place: a
    warning says why, and the detector's ``fallback_reason`` (shown in every face
    prediction's ``detail`` as ``detector_note``) keeps it."""
    if config.detector == "haar":
        return FaceDetector.from_config(config)
    if config.detector == "image":
        try:
            landmarker: YuNetDetector | None = YuNetDetector.from_config(
                FaceConfig(min_face=8, detector_max_side=0), yunet
            )
        except ModelLoadError as exc:
            log.warning("face landmarks: %s; landmarks are estimated from the box", exc)
            landmarker = None
        return ImageFaceLocator(landmarker)
    if config.detector == "yunet":
        try:
            return YuNetDetector.from_config(config, yunet)
        except ModelLoadError as exc:
            reason = f"YuNet face detector unavailable ({exc}); using the Haar cascade"
            log.warning("%s", reason)
            fallback = FaceDetector.from_config(config)
            fallback.fallback_reason = reason
            return fallback
    raise ValueError(f"unknown face detector {config.detector!r}; available: {DETECTORS}")


# --- frames and crops -----------------------------------------------------------------


def to_rgb_uint8(image: Any) -> np.ndarray:
    """An H x W x 3 uint8 RGB copy of ``image`` (or the image itself when it already is).

    Converts grayscale (H x W or H x W x 1), RGBA (alpha dropped), bool, float (in [0, 1]
    or [0, 255]) and 16-bit images. Raises ValueError, with a reason for a person, for
    anything else.
    """
    if isinstance(image, VideoFrame):
        image = image.image
    if not isinstance(image, np.ndarray):
        raise ValueError(f"frame is not an image array ({type(image).__name__})")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3):
        raise ValueError(f"frame has shape {image.shape}; expected H x W x 3")
    if image.ndim == 3 and image.shape[2] not in (3, 4):
        raise ValueError(f"frame has {image.shape[2]} channels; expected 1, 3 or 4")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty frame ({image.shape[1]} x {image.shape[0]} pixels)")

    if image.dtype != np.uint8:
        image = _to_uint8(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    kind = image.dtype.kind
    if kind == "b":
        return image.astype(np.uint8) * 255
    if kind == "f":
        x = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        if x.size and float(x.max()) <= 1.0:
            x = x * 255.0
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if kind == "u" and image.dtype.itemsize == 2:
        return (image >> 8).astype(np.uint8)
    if kind in "iu":
        return np.clip(image, 0, 255).astype(np.uint8)
    raise ValueError(f"frame pixels of type {image.dtype} cannot be used")


def _clip_box(x: int, y: int, w: int, h: int, width: int, height: int) -> Box | None:
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def expand_box(box: Box, margin: float, width: int, height: int) -> Box:
    """``box`` grown by ``margin`` of its size on every side, clipped to the frame."""
    x, y, w, h = box
    dx, dy = round(w * margin), round(h * margin)
    return _clip_box(x - dx, y - dy, w + 2 * dx, h + 2 * dy, width, height) or box


def square_box(box: Box) -> Box:
    """A square of the box's area (side: the geometric mean of its width and height)
    centred on it. The Haar cascade's boxes are square and the FER2013-trained models saw
    square crops; YuNet's boxes are taller than wide, and squeezing one into a square
    input would flatten the face."""
    x, y, w, h = box
    side = max(1, round(float(np.sqrt(w * h))))
    return (round(x + (w - side) / 2), round(y + (h - side) / 2), side, side)


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = box
    return np.ascontiguousarray(image[y : y + h, x : x + w])


PRIMARY_MIN_STRENGTH = 0.5
"""A face is a candidate for primary only if its detection strength is at least this
share of the strongest face's: the cascade sometimes finds a large false face in textured
background (it does in the bundled sample video), and largest-first would pick it."""


def choose_primary(
    boxes: Sequence[Box],
    width: int,
    height: int,
    how: Primary,
    strengths: Sequence[float] | None = None,
) -> int:
    """Index of the primary face among the confidently detected ones: the largest, or the
    one whose centre is nearest the frame's centre (ties go to the larger / earlier box)."""
    if not boxes:
        raise ValueError("no faces to choose from")
    if strengths is not None and len(strengths) == len(boxes) and max(strengths) > 0:
        floor = PRIMARY_MIN_STRENGTH * max(strengths)
        keep = [i for i, s in enumerate(strengths) if s >= floor]
        chosen = choose_primary([boxes[i] for i in keep], width, height, how)
        return keep[chosen]
    if how == "center":
        cx, cy = width / 2.0, height / 2.0
        dist = [((x + w / 2.0 - cx) ** 2 + (y + h / 2.0 - cy) ** 2) for x, y, w, h in boxes]
        return int(np.argmin(dist))
    return int(np.argmax([w * h for _, _, w, h in boxes]))


# --- the encoder ----------------------------------------------------------------------


@dataclass
class FrameFaces:
    """The faces of one frame that get classified, largest first, and which is primary."""

    boxes: list[Box]
    primary: int
    found: int
    """How many faces the detector found (more than ``boxes`` when capped)."""
    detect_s: float
    size: tuple[int, int]
    """The frame's (width, height)."""
    located: str = "detected"
    """``detected`` (the detector ran on this frame) or ``tracked`` (the faces were
    followed from an earlier frame: :class:`TrackingLocator`)."""
    landmarks: list[np.ndarray | None] = field(default_factory=list)
    """Each face's 5 landmarks (5 x 2 pixels), or None where the detector gives none."""
    track_ids: list[int | None] = field(default_factory=list)
    """Each face's track id (None without a :class:`TrackingLocator`)."""
    primary_rule: str = "largest"
    """Why the primary face is primary: ``followed`` (a person picked its track), or the
    configured rule (``largest``, ``center``)."""

    def __post_init__(self) -> None:
        if not self.landmarks:
            self.landmarks = [None] * len(self.boxes)
        if not self.track_ids:
            self.track_ids = [None] * len(self.boxes)


def locate_faces(
    detector: FaceLocator,
    image: np.ndarray,
    face: FaceConfig,
    follow: int | None = None,
) -> FrameFaces | None:
    """Detect the faces of an RGB uint8 image, keep the ``face.max_faces`` largest and
    choose the primary one: the face whose track id is ``follow`` when it is there (a
    person clicked it), else by ``face.primary`` among the confidently detected ones
    (weakly detected faces never are); None when there is none. Shared by every face
    encoder."""
    height, width = image.shape[:2]
    started = time.perf_counter()
    located = "detected"
    ids: list[int | None]
    locate_landmarked = getattr(detector, "locate_landmarked", None)
    locate_scored = getattr(detector, "locate_scored", None)
    if locate_landmarked is not None:
        found, given, located = locate_landmarked(image)
        ids = list(given)
    elif locate_scored is not None:
        scored, located = locate_scored(image)
        found = [(box, float(strength), None) for box, strength in scored]
        ids = [None] * len(found)
    else:
        found = find_faces(detector, image)
        ids = [None] * len(found)
    detect_s = time.perf_counter() - started
    if not found:
        return None
    order = sorted(range(len(found)), key=lambda i: found[i][0][2] * found[i][0][3], reverse=True)
    order = order[: face.max_faces]
    boxes = [found[i][0] for i in order]
    strengths = [found[i][1] for i in order]
    marks = [found[i][2] for i in order]
    kept_ids = [ids[i] for i in order]
    rule: str = face.primary
    if follow is not None and follow in kept_ids:
        primary, rule = kept_ids.index(follow), "followed"
    else:
        primary = choose_primary(boxes, width, height, face.primary, strengths)
    return FrameFaces(
        boxes, primary, len(found), detect_s, (width, height), located, marks, kept_ids, rule
    )


def face_detail(
    info: FrameFaces,
    n_faces: int,
    classify_s: float,
    n_rows: int,
    detector: object,
    reuse: ReusePlan | None = None,
) -> dict[str, Any]:
    """The ``detail`` of a face prediction: faces found and kept, the primary one, where
    the time went (the batch's classification time shared by the faces classified), and
    whether the classifier ran (``classified``: ``run``, or ``reused`` when every face
    kept its earlier classification, :class:`ClassifyReuse`; ``classified_age_s``: how
    old the primary face's classification is)."""
    reused = 0 if reuse is None else n_faces - len(reuse.fresh)
    run = n_faces - reused
    age = 0.0
    if reuse is not None and 0 <= info.primary < len(reuse.ages):
        age = reuse.ages[info.primary]
    detail: dict[str, Any] = {
        "faces": n_faces,
        "faces_found": info.found,
        "primary_index": info.primary,
        "detect_s": info.detect_s,
        "classify_s": classify_s * run / max(1, n_rows),
        "batch_classify_s": classify_s,
        "frame_size": info.size,
        "detector": getattr(detector, "name", "custom"),
        "located": info.located,
        "track_ids": list(info.track_ids),
        "primary_rule": info.primary_rule,
        "classified": "reused" if n_faces and run == 0 else "run",
        "faces_reused": reused,
        "classified_age_s": age,
    }
    note = getattr(detector, "fallback_reason", None)
    if note:
        detail["detector_note"] = note
    return detail


class FaceEncoder(TransformersEncoder):
    """Facial-expression classification of video frames (``VideoFrame`` or an RGB array).

    ``detector`` overrides the detector ``face.detector`` names.
    """

    modality: ClassVar[Modality] = Modality.FACE
    task: ClassVar[str] = "image-classification"
    auto_model: ClassVar[str] = "AutoModelForImageClassification"
    task_mapping: ClassVar[str] = "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES"

    def __init__(
        self,
        config: EncoderConfig,
        face: FaceConfig | None = None,
        detector: FaceLocator | None = None,
    ) -> None:
        super().__init__(config)
        self.face = face or FaceConfig()
        self.detector: FaceLocator | None = detector
        self.reuse: ClassifyReuse | None = None
        """When set (:func:`reuse_classes`), tracked unchanged faces keep their earlier
        classification."""
        self.follow: int | None = None
        """The track id of the face a person chose to follow (:func:`follow_face`)."""

    def load_processor(self, transformers: Any, source: str, kwargs: dict[str, Any]) -> Any:
        return transformers.AutoImageProcessor.from_pretrained(source, **kwargs)

    def after_load(self) -> None:
        # Image size, mean and std come from the model's own image processor; one that
        # states none, or a size its model was not built for, is refused.
        size = _processor_size(self.processor)
        if size is None:
            self.model = None
            raise ModelLoadError(
                f"model {self.model_id!r}: its image processor states no image size, so its "
                "images cannot be prepared as it was trained"
            )
        if getattr(self.processor, "do_normalize", False) and (
            getattr(self.processor, "image_mean", None) is None
            or getattr(self.processor, "image_std", None) is None
        ):
            self.model = None
            raise ModelLoadError(
                f"model {self.model_id!r}: its image processor normalises but states no "
                "image mean and std"
            )
        built_for = getattr(getattr(self.model, "config", None), "image_size", None)
        if isinstance(built_for, int) and size != (built_for, built_for):
            self.model = None
            raise ModelLoadError(
                f"model {self.model_id!r}: its image processor makes {size[0]}x{size[1]} "
                f"images, but the model was built for {built_for}x{built_for}; its configs "
                "disagree"
            )
        if self.detector is None:
            self.detector = make_detector(self.face)

    def preprocess(self, items: Sequence[VideoFrame | np.ndarray]) -> Prepared:
        assert self.detector is not None
        prepared = Prepared()
        frames: dict[int, FrameFaces] = {}
        plans: dict[int, ReusePlan] = {}
        reuse = self.reuse
        for index, item in enumerate(items):
            try:
                image = to_rgb_uint8(item)
            except ValueError as exc:
                prepared.skipped[index] = str(exc)
                continue
            located = locate_faces(self.detector, image, self.face, self.follow)
            if located is None:
                prepared.skipped[index] = NO_FACE
                continue
            frames[index] = located
            width, height = located.size
            boxes = located.boxes
            if reuse is not None:
                plan = reuse.plan(image, located, frame_time(item))
                plans[index] = plan
                boxes = [boxes[i] for i in plan.fresh]
            for box in boxes:
                region = expand_box(square_box(box), self.face.margin, width, height)
                prepared.add(index, crop(image, region))
        prepared.extra["frames"] = frames
        prepared.extra["reuse"] = plans
        prepared.extra["reuse_gate"] = reuse
        return prepared

    def collate(self, rows: list[np.ndarray]) -> dict[str, Any]:
        return dict(self.processor(images=rows, return_tensors="pt"))

    def postprocess(
        self,
        items: Sequence[VideoFrame | np.ndarray],
        prepared: Prepared,
        probs: np.ndarray,
        latency_s: float,
    ) -> list[EncoderOutput]:
        assert self.label_map is not None
        per_item = latency_s / max(1, len(items))
        frames: dict[int, FrameFaces] = prepared.extra.get("frames", {})
        plans: dict[int, ReusePlan] = prepared.extra.get("reuse", {})
        reuse: ClassifyReuse | None = prepared.extra.get("reuse_gate")
        classify_s = float(prepared.extra.get("classify_s", 0.0))
        n_rows = max(1, len(prepared.rows))
        owners = np.asarray(prepared.owners, dtype=int)
        outputs: list[EncoderOutput] = []
        for index, item in enumerate(items):
            t = item.t if isinstance(item, VideoFrame) else 0.0
            info = frames.get(index)
            if info is None:
                reason = prepared.skipped.get(index, NO_FACE)
                outputs.append(NoPrediction(Modality.FACE, t, reason, self.model_id, per_item))
                continue
            rows = np.flatnonzero(owners == index)
            plan = plans.get(index)
            face_probs = merge_reused(plan, [probs[row] for row in rows])
            if plan is not None and reuse is not None:
                reuse.remember(info, plan, face_probs)
            faces = tuple(
                FaceDetection(box, p, track)
                for box, p, track in zip(info.boxes, face_probs, info.track_ids, strict=True)
            )
            p = faces[info.primary].probs
            outputs.append(
                ModalityPrediction(
                    modality=Modality.FACE,
                    t=t,
                    probs=p,
                    mask=self.label_map.mask.copy(),
                    confidence=float(p.max()),
                    model_id=self.model_id,
                    latency_s=per_item,
                    faces=faces,
                    detail=face_detail(info, len(faces), classify_s, n_rows, self.detector, plan),
                )
            )
        return outputs


def frame_time(item: object) -> float | None:
    """A frame's time (None for a bare image, which has none)."""
    return float(item.t) if isinstance(item, VideoFrame) else None


def merge_reused(plan: ReusePlan | None, fresh: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Every face's output in order: the reused ones from ``plan``, the others taken in
    turn from ``fresh`` (the classifier's outputs for :attr:`ReusePlan.fresh`)."""
    if plan is None:
        return list(fresh)
    if len(fresh) != len(plan.fresh):
        raise ValueError(f"{len(fresh)} outputs for {len(plan.fresh)} faces classified")
    given = iter(fresh)
    return [next(given) if r is None else r.copy() for r in plan.reused]


def _processor_size(processor: Any) -> tuple[int, int] | None:
    """(height, width) an image processor resizes to, when it states one."""
    size = getattr(processor, "size", None)
    if isinstance(size, int):
        return size, size
    if not isinstance(size, dict):
        size = getattr(size, "__dict__", None) or None
    if not size:
        return None
    if size.get("height") and size.get("width"):
        return int(size["height"]), int(size["width"])
    if size.get("shortest_edge"):
        edge = int(size["shortest_edge"])
        return edge, edge
    return None
