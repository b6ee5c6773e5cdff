"""Aligned face crops: a similarity transform from a face's 5 landmarks to a template.

Detectors such as YuNet give five landmarks per face (right eye, left eye, nose tip,
right and left mouth corner, in the image's pixels). :func:`similarity_transform` finds
the rotation, uniform scale and translation that carries them onto a fixed template
with least squares (Umeyama 1991: the closed form, no random sampling, so the same face
always gives the same crop), and :func:`align_face` warps the image with it. The
template is the standard 112 x 112 one of ArcFace/InsightFace, which OpenCV Zoo's
MobileFaceNet expression model was trained with.

Pure numpy except the warp (OpenCV, imported when called).
"""

from __future__ import annotations

from typing import Any

import numpy as np

TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
"""Where the 5 landmarks sit in a 112 x 112 aligned face (right eye, left eye, nose,
right and left mouth corner, as YuNet orders them)."""
TEMPLATE_SIZE = 112


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2 x 3 matrix ``[sR | t]`` (rotation ``R``, scale ``s`` > 0, translation ``t``)
    that maps the points ``src`` (N x 2) onto ``dst`` (N x 2) with the least squared error
    (Umeyama's closed form; no reflection). Raises ValueError for fewer than 2 points,
    shapes that differ, non-finite values, or ``src`` points that all coincide."""
    a = np.asarray(src, dtype=np.float64)
    b = np.asarray(dst, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2 or a.shape != b.shape or a.shape[0] < 2:
        raise ValueError(f"need two matching N x 2 point sets (N >= 2), got {a.shape}, {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("landmarks must be finite numbers")
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    da, db = a - mean_a, b - mean_b
    var_a = float((da**2).sum() / len(a))
    if var_a <= 1e-12:
        raise ValueError("the landmarks all lie on one point")
    cov = db.T @ da / len(a)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign)) / var_a
    translation = mean_b - scale * rotation @ mean_a
    return np.hstack([scale * rotation, translation[:, None]])


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` (N x 2) moved by a 2 x 3 affine ``matrix``."""
    p = np.asarray(points, dtype=np.float64)
    return p @ matrix[:, :2].T + matrix[:, 2]


def alignment_matrix(landmarks: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """The transform that aligns a face's 5 ``landmarks`` to the template scaled to
    ``size`` x ``size`` pixels."""
    return similarity_transform(
        np.asarray(landmarks, dtype=np.float64).reshape(5, 2),
        TEMPLATE_112 * (size / TEMPLATE_SIZE),
    )


def align_face(
    image: np.ndarray,
    landmarks: np.ndarray,
    size: int = TEMPLATE_SIZE,
    template: np.ndarray | None = None,
) -> np.ndarray:
    """The ``size`` x ``size`` aligned crop of ``image`` (H x W or H x W x C) whose 5
    ``landmarks`` land on ``template`` (pixels of the crop; default the 112 x 112
    template scaled to ``size``); what falls outside the image is filled by replicating
    its border."""
    import cv2

    if template is None:
        matrix = alignment_matrix(landmarks, size)
    else:
        matrix = similarity_transform(
            np.asarray(landmarks, dtype=np.float64).reshape(5, 2), np.asarray(template)
        )
    out: Any = cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.ascontiguousarray(out)


def box_landmarks(box: tuple[int, int, int, int]) -> np.ndarray:
    """Estimated landmarks for a face known only by its square-ish box (a detector
    without landmarks, or a ready-made face crop): the template placed so that the
    template's 112 x 112 square fills the box. A rough stand-in, used only when no
    landmark detector found the face."""
    x, y, w, h = box
    scale = np.array([w / TEMPLATE_SIZE, h / TEMPLATE_SIZE])
    return TEMPLATE_112 * scale + np.array([x, y], dtype=np.float64)
