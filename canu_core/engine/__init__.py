"""Training loops: source pretraining (`engine.pretrain`), and SSG / MMT adaptation with the camera adversary (none,
plain or conditional) they share. The submodules keep their names: `engine.pretrain` is the module (its function
`pretrain` is imported from it), not shadowed here."""

from .adaptation import discriminator_conditions, load_adapted_model, make_clustering, train_set_features
from .adversary import CameraAdversary
from .mmt import train_mmt
from .pretrain import load_source_model
from .ssg import train_ssg

__all__ = [
    "CameraAdversary",
    "discriminator_conditions",
    "load_adapted_model",
    "load_source_model",
    "make_clustering",
    "train_mmt",
    "train_set_features",
    "train_ssg",
]
