"""Training loops: source pretraining, and SSG / MMT adaptation with the camera adversary (none, plain or
conditional) they share."""
from .adaptation import discriminator_conditions, load_adapted_model, make_clustering, train_set_features
from .adversary import CameraAdversary
from .mmt import train_mmt
from .pretrain import load_source_model, pretrain
from .ssg import train_ssg

__all__ = ["CameraAdversary", "discriminator_conditions", "load_adapted_model", "load_source_model",
           "make_clustering", "pretrain", "train_mmt", "train_set_features", "train_ssg"]
