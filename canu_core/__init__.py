"""CANU-ReID reference implementation: conditional camera-adversarial unsupervised person re-identification.

What a notebook imports most: the typed parameters (`Params`, `load_params`), run folders (`RunFolder`,
`open_run`), datasets (`canu_core.data`), the training loops (`canu_core.engine`), clustering and its diagnostics
(`canu_core.cluster`), evaluation (`evaluate`) and the figures (`canu_core.viz`)."""

from .config import ConfigError, Params, load_params, make_params
from .evaluate import evaluate
from .runs import RunFolder, open_run

__version__ = "0.1.0"
__all__ = ["ConfigError", "Params", "RunFolder", "evaluate", "load_params", "make_params", "open_run"]
