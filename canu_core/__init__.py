"""CANU-ReID reference implementation: conditional camera-adversarial unsupervised person re-identification.

What a notebook imports most: the typed parameters (`Params`, `load_params`), run folders (`RunFolder`,
`open_run`), datasets (`canu_core.data`), the training loops (`canu_core.engine`), clustering and its diagnostics
(`canu_core.cluster`), evaluation (`canu_core.evaluate.evaluate`) and the figures (`canu_core.viz`).

`RunFolder` and `open_run` are imported on first use (PEP 562): run folders pull in torch, which the command
line's parent process (it reads parameters and starts a kernel) does not need to load before it can answer."""

from importlib import import_module

from .config import ConfigError, Params, load_params, make_params

__version__ = "0.1.0"
__all__ = ["ConfigError", "Params", "RunFolder", "load_params", "make_params", "open_run"]


def __getattr__(name: str):
    if name in ("RunFolder", "open_run"):
        return getattr(import_module(".runs", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
