"""Training loops: source pretraining (`engine.pretrain`), and SSG / MMT adaptation with the camera adversary (none,
plain or conditional) they share. The submodules keep their names: `engine.pretrain` is the module (its function
`pretrain` is imported from it), not shadowed here."""

from .adaptation import adaptation_metrics, discriminator_conditions, first_clustering_report
from .adversary import CameraAdversary
from .checkpoints import load_adapted_model, load_source_model, pretraining_record
from .common import MixedPrecision
from .mmt import train_mmt
from .pretrain import PretrainTrainer, pretrain_model
from .ssg import parts_model, train_ssg
from .walkthrough import gradient_reach, one_batch

__all__ = [
    "first_clustering_report",
    "MixedPrecision",
    "PretrainTrainer",
    "parts_model",
    "CameraAdversary",
    "adaptation_metrics",
    "discriminator_conditions",
    "gradient_reach",
    "load_adapted_model",
    "load_source_model",
    "one_batch",
    "pretrain_model",
    "pretraining_record",
    "train_mmt",
    "train_ssg",
]
