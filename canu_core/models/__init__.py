"""Models: backbones (feature maps), the re-ID head, camera discriminators, and local weight loading."""

from .backbones import BACKBONES, build_backbone
from .discriminators import CameraDiscriminator, ConditionalCameraDiscriminator, build_discriminator
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
    "load_backbone_weights",
]
