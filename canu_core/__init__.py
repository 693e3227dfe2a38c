"""CANU-ReID reference implementation: conditional camera-adversarial unsupervised person re-identification.

The public API, what a notebook or a script needs, one import away:

    from canu_core import load_params, load_dataset, target_world, open_run, pretrain, adapt, evaluate

- parameters and run folders: `Params`, `load_params`, `make_params`, `ConfigError`, `RunFolder`, `open_run`;
- data: `load_dataset`, `target_world`, `ids_and_cameras`, `dataset_readout`;
- training: `pretrain` (notebook 01's source models), `adapt` (SSG or MMT, with the camera adversary the
  parameters name), `load_source_model`, `load_adapted_model`, `pretraining_record`, `adaptation_metrics`;
- features, clustering and evaluation: `train_set_features`, `make_clustering`, `clustering_diagnostics`,
  `evaluate`;
- notebooks: `params_from_namespace`, `run_notebook`.

The figures are `canu_core.viz`'s, the study's tables and claims `canu_core.study`'s, the building blocks (the
adversary, the walkthrough of one CANU step) `canu_core.engine`'s, `canu_core.cluster`'s and `canu_core.data`'s.
Names are imported on first use (PEP 562): the command line's parent process reads parameters and starts a kernel
without loading torch first."""

from importlib import import_module

from .config import ConfigError, Params, load_params, make_params

__version__ = "0.1.0"

# Each public name and the module it lives in, loaded when first asked for.
LAZY = {
    "RunFolder": ".runs",
    "open_run": ".runs",
    "load_dataset": ".data",
    "target_world": ".data",
    "ids_and_cameras": ".data",
    "dataset_readout": ".data",
    "pretrain": ".training",
    "adapt": ".training",
    "load_source_model": ".engine",
    "load_adapted_model": ".engine",
    "pretraining_record": ".engine",
    "adaptation_metrics": ".engine",
    "train_set_features": ".evaluation",
    "evaluate": ".evaluation",
    "make_clustering": ".cluster",
    "clustering_diagnostics": ".cluster",
    "params_from_namespace": ".notebook",
    "run_notebook": ".notebook",
    "lab_findings": ".study",
}
__all__ = [
    "ConfigError",
    "Params",
    "RunFolder",
    "adapt",
    "adaptation_metrics",
    "clustering_diagnostics",
    "dataset_readout",
    "evaluate",
    "ids_and_cameras",
    "lab_findings",
    "load_adapted_model",
    "load_dataset",
    "load_params",
    "load_source_model",
    "make_clustering",
    "make_params",
    "open_run",
    "params_from_namespace",
    "pretrain",
    "pretraining_record",
    "run_notebook",
    "target_world",
    "train_set_features",
]


def __getattr__(name: str):
    if name in LAZY:
        return getattr(import_module(LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
