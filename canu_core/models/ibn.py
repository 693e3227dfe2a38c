"""IBN-a (Pan et al., ECCV 2018): instance norm on half the channels of each bottleneck's bn1 in layers 1-3.

Instance norm removes per-image appearance (colour, contrast) that differs between cameras and datasets; batch norm
on the other half keeps what discriminates identities. Module names (`bn1.IN`, `bn1.BN`) follow the official
XingangPan/IBN-Net release so its ImageNet state dict loads unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

IBN_LAYERS = ("layer1", "layer2", "layer3")


class IBN(nn.Module):
    """The first `int(channels * ratio)` channels through InstanceNorm2d(affine), the rest through BatchNorm2d."""

    def __init__(self, channels: int, ratio: float = 0.5):
        super().__init__()
        self.half = int(channels * ratio)
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(channels - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        instance_part, batch_part = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat((self.IN(instance_part.contiguous()), self.BN(batch_part.contiguous())), dim=1)


def apply_ibn_a(trunk: nn.Module) -> nn.Module:
    """Replace `bn1` of every residual block in layer1-3 by an IBN module of the same width, in place."""
    for layer_name in IBN_LAYERS:
        for block in getattr(trunk, layer_name):
            block.bn1 = IBN(block.bn1.num_features)
    return trunk
