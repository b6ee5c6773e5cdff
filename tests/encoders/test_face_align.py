"""The similarity alignment of 5 face landmarks onto the 112 x 112 template."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.encoders.face_align import (
    TEMPLATE_112,
    align_face,
    alignment_matrix,
    apply_transform,
    box_landmarks,
    similarity_transform,
)


def _similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


def test_template_landmarks_map_onto_themselves():
    matrix = alignment_matrix(TEMPLATE_112)
    np.testing.assert_allclose(matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    np.testing.assert_allclose(apply_transform(matrix, TEMPLATE_112), TEMPLATE_112, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    angle=st.floats(-math.pi * 0.9, math.pi * 0.9),
    scale=st.floats(0.2, 8.0),
    tx=st.floats(-500, 500),
    ty=st.floats(-500, 500),
)
def test_a_rotated_scaled_shifted_face_aligns_back_onto_the_template(angle, scale, tx, ty):
    moved = apply_transform(_similarity(angle, scale, tx, ty), TEMPLATE_112)
    back = apply_transform(alignment_matrix(moved), moved)
    np.testing.assert_allclose(back, TEMPLATE_112, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(noise=st.lists(st.floats(-3, 3), min_size=10, max_size=10), size=st.sampled_from([64, 112]))
def test_the_transform_is_a_similarity_and_least_squares(noise, size):
    marks = TEMPLATE_112 * 1.7 + 40 + np.array(noise).reshape(5, 2)
    matrix = alignment_matrix(marks, size)
    a = matrix[:, :2]
    # rotation times a positive scale: orthogonal columns of equal length, no reflection
    assert a[0, 0] == pytest.approx(a[1, 1], abs=1e-9)
    assert a[0, 1] == pytest.approx(-a[1, 0], abs=1e-9)
    assert np.linalg.det(a) > 0
    target = TEMPLATE_112 * (size / 112)
    best = np.sum((apply_transform(matrix, marks) - target) ** 2)
    for bump in (np.array([[0, 0, 0.5], [0, 0, 0]]), np.array([[0.01, 0, 0], [0, 0.01, 0]])):
        assert best <= np.sum((apply_transform(matrix + bump, marks) - target) ** 2) + 1e-9


def test_an_aligned_crop_puts_the_marked_points_on_the_template():
    image = np.zeros((300, 400, 3), dtype=np.uint8)
    moved = apply_transform(_similarity(0.4, 1.6, 120, 30), TEMPLATE_112)
    for x, y in moved:
        image[round(y) - 1 : round(y) + 2, round(x) - 1 : round(x) + 2] = 255
    out = align_face(image, moved)
    assert out.shape == (112, 112, 3)
    for x, y in TEMPLATE_112:
        assert out[round(y), round(x)].max() > 100


def test_bad_landmarks_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="one point"):
        similarity_transform(np.ones((5, 2)), TEMPLATE_112)
    with pytest.raises(ValueError, match="finite"):
        similarity_transform(np.full((5, 2), np.nan), TEMPLATE_112)
    with pytest.raises(ValueError, match="N x 2"):
        similarity_transform(np.ones((5, 3)), TEMPLATE_112)


def test_box_landmarks_fill_the_box_like_the_template_fills_its_square():
    np.testing.assert_allclose(box_landmarks((0, 0, 112, 112)), TEMPLATE_112)
    np.testing.assert_allclose(box_landmarks((10, 20, 56, 56)), TEMPLATE_112 / 2 + [10, 20])
