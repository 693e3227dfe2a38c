"""Backbones: each maps images (N, 3, H, W) to a feature map (N, out_channels, h, w); no pooling, no classifier.

All share torchvision's ResNet module names (conv1, bn1, layer1..layer4), so ImageNet state dicts of torchvision's
ResNet-50 and of the official IBN-ResNet-50-a load into them without renaming.
"""

from __future__ import annotations

from typing import Callable

import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock

from .ibn import apply_ibn_a


class ResNetTrunk(nn.Module):
    """conv1 -> bn1 -> relu -> maxpool -> layer1..layer4 of a ResNet, exposing `out_channels`."""

    def __init__(
        self, conv1: nn.Module, bn1: nn.Module, maxpool: nn.Module, layers: list[nn.Sequential], out_channels: int
    ):
        super().__init__()
        self.conv1 = conv1
        self.bn1 = bn1
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.out_channels = out_channels

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _check_last_stride(last_stride: int) -> None:
    if last_stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")


def resnet50(last_stride: int = 1) -> ResNetTrunk:
    """torchvision ResNet-50 (random init, never downloaded); last_stride=1 doubles layer4's map (re-ID practice)."""
    _check_last_stride(last_stride)
    net = torchvision.models.resnet50(weights=None)
    first_block = net.layer4[0]
    first_block.conv2.stride = (last_stride, last_stride)
    first_block.downsample[0].stride = (last_stride, last_stride)
    layers = [net.layer1, net.layer2, net.layer3, net.layer4]
    return ResNetTrunk(net.conv1, net.bn1, net.maxpool, layers, out_channels=2048)


def ibn_resnet50a(last_stride: int = 1) -> ResNetTrunk:
    """IBN-ResNet-50-a, the MMT / CANU-MMT backbone; state-dict names match the official ImageNet release."""
    return apply_ibn_a(resnet50(last_stride))


def _basic_stage(in_channels: int, channels: int, blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or in_channels != channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels)
        )
    stage = [BasicBlock(in_channels, channels, stride, downsample)]
    stage += [BasicBlock(channels, channels) for _ in range(blocks - 1)]
    return nn.Sequential(*stage)


def compact(last_stride: int = 1, width: int = 32, blocks: tuple[int, ...] = (1, 1, 1, 1)) -> ResNetTrunk:
    """A small ResNet for CPU runs on 64x32 / 128x64 synthetic images: channels width*(1, 2, 4, 8).

    Stem: one 3x3 conv with stride 2 (no max-pool), so the total stride is 8 (last_stride=1) or 16: half
    ResNet-50's, since the images are small (a 128x64 input gives the 16x8 map ResNet-50 gives at 256x128).
    """
    _check_last_stride(last_stride)
    if len(blocks) != 4 or min(blocks) < 1:
        raise ValueError(f"blocks must be 4 positive block counts (one per stage), got {blocks}")
    channels = [width, 2 * width, 4 * width, 8 * width]
    strides = [1, 2, 2, last_stride]
    layers, in_channels = [], width
    for out_channels, count, stride in zip(channels, blocks, strides):
        layers.append(_basic_stage(in_channels, out_channels, count, stride))
        in_channels = out_channels
    trunk = ResNetTrunk(
        nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.Identity(),
        layers,
        out_channels=channels[-1],
    )
    _init_like_torchvision(trunk)
    return trunk


def compact_ibn(last_stride: int = 1, width: int = 32, blocks: tuple[int, ...] = (1, 1, 1, 1)) -> ResNetTrunk:
    """The compact net with the IBN-a split in layers 1-3, to mirror the IBN-ResNet-50-a recipe at small scale."""
    return apply_ibn_a(compact(last_stride, width, blocks))


def _init_like_torchvision(module: nn.Module) -> None:
    """Kaiming-normal (fan_out) convolutions, unit-scale zero-shift norms: torchvision's ResNet initialisation."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


BACKBONES: dict[str, Callable[..., ResNetTrunk]] = {
    "resnet50": resnet50,
    "ibn_resnet50a": ibn_resnet50a,
    "compact": compact,
    "compact_ibn": compact_ibn,
}


def build_backbone(name: str, last_stride: int = 1, **kwargs) -> ResNetTrunk:
    """Build a backbone by name; `kwargs` go to the builder (e.g. width / blocks for the compact nets)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name](last_stride=last_stride, **kwargs)
