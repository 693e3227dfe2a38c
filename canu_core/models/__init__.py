"""Models: backbones (feature maps), the re-ID head, camera discriminators, BatchNorm statistics over groups of a
batch, and local weight loading."""

from .backbones import BACKBONES, build_backbone
from .discriminators import CameraDiscriminator, ConditionalCameraDiscriminator, build_discriminator
from .grouped_batchnorm import group_batchnorm
from .ibn import IBN
from .reid import ReidModel, build_model
from .weights import load_backbone_weights

__all__ = [
    "BACKBONES",
    "IBN",
    "CameraDiscriminator",
    "ConditionalCameraDiscriminator",
    "ReidModel",
    "build_backbone",
    "build_discriminator",
    "build_model",
    "group_batchnorm",
    "load_backbone_weights",
]
