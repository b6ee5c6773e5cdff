"""Face saliency: which regions of each face crop raised the score of the label shown.

Both methods differentiate the *log-probability* of the canonical label (the log of the
summed probability of the raw labels mapped to it, over the labels that are not
ignored), so a label several raw classes map onto is explained as the prediction shows
it. Each map covers the model's input crop (the face box grown by the crop margin) and is
pooled to a :data:`~emoapp.core.explanation.GRID` x ``GRID`` grid of non-negative cells,
the largest scaled to 1.

- :class:`GradCamFaceExplainer` (the embedded mini-Xception): Grad-CAM (Selvaraju et al.,
  2017) on the output of the third residual block (8 x 8 cells for a 64 x 64 crop; the
  fourth is only 4 x 4): the block's channels weighted by their mean gradient, summed,
  ReLU, resized to the crop and averaged per grid cell.
- :class:`GradientFaceExplainer` (transformers image models): gradient x input on the
  processor's pixel values, summed over channels and over the pixels of each grid cell
  (the first-order share of each region in the score), ReLU.

This module imports torch: import it only when an explanation is asked for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from emoapp.core.explanation import (
    GRID,
    FaceExplanation,
    FaceSaliency,
    normalise_grid,
    require_expressible,
)
from emoapp.core.labelmap import IGNORE, LabelMap
from emoapp.core.messages import ModalityPrediction, VideoFrame
from emoapp.encoders.face import crop, expand_box, square_box, to_rgb_uint8

GRAD_CAM_BLOCK = 2
"""Index of the mini-Xception residual block whose output Grad-CAM weighs."""


def label_log_prob(logits: torch.Tensor, label_map: LabelMap, label: str) -> torch.Tensor:
    """log P(canonical ``label``) per row of raw-label ``logits``, as the label map
    computes the probability (ignored raw labels dropped, the rest renormalised)."""
    members = [i for i, target in enumerate(label_map.targets) if target == label]
    kept = [i for i, target in enumerate(label_map.targets) if target != IGNORE]
    z = logits.float()
    return torch.logsumexp(z[:, members], dim=1) - torch.logsumexp(z[:, kept], dim=1)


def pool_to_grid(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """N x h x w maps -> N x GRID x GRID: resized (bilinear) to ``size``, then averaged
    over each grid cell."""
    up = F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)
    return F.adaptive_avg_pool2d(up, GRID)[:, 0].detach().cpu().numpy().astype(np.float64)


def grad_cam(
    model: torch.nn.Module,
    layer: torch.nn.Module,
    x: torch.Tensor,
    score: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Grad-CAM maps (N x h x w, ReLU'd, unscaled) of ``score(model(x))`` (one score per
    row) at ``layer``'s output."""
    captured: dict[str, torch.Tensor] = {}
    mine = threading.get_ident()

    def keep(_module: Any, _inputs: Any, output: torch.Tensor) -> None:
        # The encoder's own worker may run the same model meanwhile (a hook is seen by
        # every thread): keep only this call's activations.
        if threading.get_ident() == mine and output.requires_grad:
            captured["a"] = output

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            scores = score(model(x))
            activations = captured["a"]
            (grads,) = torch.autograd.grad(scores.sum(), activations)
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * activations).sum(dim=1)).detach()


def _labels_for(prediction: ModalityPrediction, label: str | None, model_id: str) -> list[str]:
    if label is not None:
        require_expressible(label, prediction.mask, model_id)
        return [label] * len(prediction.faces)
    labels = []
    for face in prediction.faces:
        require_expressible(face.label, prediction.mask, model_id)
        labels.append(face.label)
    return labels


def _image_of(item: VideoFrame | np.ndarray) -> np.ndarray:
    return to_rgb_uint8(item)


class GradCamFaceExplainer:
    """Grad-CAM for :class:`~emoapp.encoders.embedded.face.MiniXceptionFaceEncoder`."""

    method = "grad-cam"

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    def saliency(self, gray: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """N x GRID x GRID maps (unnormalised) for N x 64 x 64 uint8 faces, one label
        each."""
        from emoapp.encoders.embedded.face import INPUT_SIZE, scale_inputs

        self.encoder.load()
        model = self.encoder.model
        label_map = self.encoder.label_map
        x = torch.from_numpy(scale_inputs(gray))
        by_label: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            by_label.setdefault(label, []).append(i)
        out = np.zeros((len(labels), GRID, GRID))
        for label, rows in by_label.items():

            def score(z: torch.Tensor, label: str = label) -> torch.Tensor:
                return label_log_prob(z, label_map, label)

            maps = grad_cam(model, model.blocks[GRAD_CAM_BLOCK], x[rows], score)
            out[rows] = pool_to_grid(maps, (INPUT_SIZE, INPUT_SIZE))
        return out

    def explain(
        self,
        item: VideoFrame | np.ndarray,
        prediction: ModalityPrediction,
        label: str | None = None,
    ) -> FaceExplanation:
        from emoapp.encoders.embedded.face import crop_box, face_inputs

        self.encoder.load()
        labels = _labels_for(prediction, label, self.encoder.model_id)
        image = _image_of(item)
        boxes = [face.box for face in prediction.faces]
        height, width = image.shape[:2]
        margin = self.encoder.crop_margin
        grids = (
            self.saliency(face_inputs(image, boxes, margin), labels)
            if boxes
            else np.zeros((0, GRID, GRID))
        )
        faces = tuple(
            FaceSaliency(crop_box(box, margin, width, height), lab, normalise_grid(g))
            for box, lab, g in zip(boxes, labels, grids, strict=True)
        )
        return FaceExplanation(prediction.t, self.encoder.model_id, self.method, faces)


class PairGradCamFaceExplainer(GradCamFaceExplainer):
    """Grad-CAM for the embedded face pair: where its mini-Xception member looked (the
    int8 ONNX member gives no gradients), for the label the pair gave."""

    def __init__(self, pair: Any) -> None:
        self.pair = pair

    @property
    def encoder(self) -> Any:
        from emoapp.core.errors import ModelLoadError
        from emoapp.encoders.embedded.face import MiniXceptionFaceEncoder

        self.pair.load()
        for member in self.pair.members:
            if isinstance(member, MiniXceptionFaceEncoder):
                return member
        raise ModelLoadError(f"{self.pair.model_id} has no mini-Xception member to explain")


class GradientFaceExplainer:
    """Gradient x input for :class:`~emoapp.encoders.face.FaceEncoder` (any transformers
    image-classification model)."""

    method = "gradient-x-input"

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    def saliency(self, crops: Sequence[np.ndarray], labels: Sequence[str]) -> np.ndarray:
        """N x GRID x GRID maps (unnormalised) for N RGB face crops, one label each."""
        enc = self.encoder
        enc.load()
        inputs = enc.collate(list(crops))
        pixels = inputs["pixel_values"].to(device=enc.device, dtype=enc.dtype)
        pixels.requires_grad_(True)
        out = np.zeros((len(labels), GRID, GRID))
        by_label: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            by_label.setdefault(label, []).append(i)
        for label, rows in by_label.items():
            x = pixels[rows].detach().requires_grad_(True)
            with torch.enable_grad():
                logits = enc.model(pixel_values=x).logits
                score = label_log_prob(logits, enc.label_map, label)
                (grad,) = torch.autograd.grad(score.sum(), x)
            contribution = (grad.float() * x.detach().float()).sum(dim=1)  # N x H x W
            pooled = F.adaptive_avg_pool2d(contribution[:, None], GRID)[:, 0]
            out[rows] = pooled.cpu().numpy().astype(np.float64)
        return out

    def explain(
        self,
        item: VideoFrame | np.ndarray,
        prediction: ModalityPrediction,
        label: str | None = None,
    ) -> FaceExplanation:
        enc = self.encoder
        enc.load()
        labels = _labels_for(prediction, label, enc.model_id)
        image = _image_of(item)
        height, width = image.shape[:2]
        regions = [
            expand_box(square_box(f.box), enc.face.margin, width, height) for f in prediction.faces
        ]
        grids = (
            self.saliency([crop(image, r) for r in regions], labels)
            if regions
            else np.zeros((0, GRID, GRID))
        )
        faces = tuple(
            FaceSaliency(region, lab, normalise_grid(g))
            for region, lab, g in zip(regions, labels, grids, strict=True)
        )
        return FaceExplanation(prediction.t, enc.model_id, self.method, faces)
