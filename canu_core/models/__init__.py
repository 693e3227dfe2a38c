"""Models: backbones (feature maps), the re-ID head, and local weight loading."""
from .backbones import BACKBONES, build_backbone
from .ibn import IBN
from .reid import ReidModel, build_model
from .weights import load_backbone_weights

__all__ = ["BACKBONES", "IBN", "ReidModel", "build_backbone", "build_model", "load_backbone_weights"]
