"""Run folders: `outputs/<run_name>/` holds params, per-epoch history, metrics, checkpoints and figures.

Everything is written atomically (temporary file + rename), so an interrupted run never leaves a half-written file
and can resume from its last checkpoint.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch
import yaml

PROJECT_MARKER = "pyproject.toml"


def project_root() -> Path:
    """The repository root, so runs started from `notebooks/` and from the root land in the same `outputs/`."""
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / PROJECT_MARKER).is_file() and (folder / "canu_core").is_dir():
            return folder
    return Path(__file__).resolve().parent.parent


def resolve_path(path: str | os.PathLike) -> Path:
    """Relative paths are taken from the project root; absolute ones are kept."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_root() / path


def git_commit() -> str:
    """The commit the code was run from, with '+dirty' when the tree has uncommitted changes; 'unknown' outside git."""
    root = project_root()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _atomic_write(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return _atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    return _atomic_write(Path(path), lambda tmp: torch.save(obj, tmp))


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunFolder:
    """One run's folder. Files: params.yaml, history.csv, metrics.json, checkpoints/, figures/."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def for_run(cls, run_name: str, outputs: str | os.PathLike | None = None) -> "RunFolder":
        """`outputs/<run_name>` under the project root; the CANU_OUTPUTS environment variable moves `outputs`
        (the tests use it to keep their runs out of the repository)."""
        if not run_name or "/" in run_name or run_name in {".", ".."}:
            raise ValueError(f"run_name must be a plain folder name, found {run_name!r}")
        return cls(resolve_path(outputs or os.environ.get("CANU_OUTPUTS", "outputs")) / run_name)

    # --- parameters
    def write_params(self, params: Mapping[str, Any]) -> Path:
        """Save the resolved parameters with the git commit they ran from (the seed is one of the parameters)."""
        record = {**dict(params), "git_commit": git_commit()}
        return atomic_write_text(self.path / "params.yaml", yaml.safe_dump(record, sort_keys=False))

    def read_params(self) -> dict[str, Any]:
        return yaml.safe_load((self.path / "params.yaml").read_text())

    # --- per-epoch history
    @property
    def history_path(self) -> Path:
        return self.path / "history.csv"

    def read_history(self) -> pd.DataFrame:
        return pd.read_csv(self.history_path) if self.history_path.is_file() else pd.DataFrame()

    def append_history(self, row: Mapping[str, Any], key: tuple[str, ...] = ("epoch",)) -> pd.DataFrame:
        """Add one epoch's row; a row with the same `key` values already present (a resumed run) is replaced."""
        history = self.read_history()
        if not history.empty and all(k in row and k in history for k in key):
            same = pd.concat([history[k] == row[k] for k in key], axis=1).all(axis=1)
            history = history[~same]
        history = pd.concat([history, pd.DataFrame([dict(row)])], ignore_index=True)
        atomic_write_text(self.history_path, history.to_csv(index=False))
        return history

    # --- metrics
    def write_metrics(self, metrics: Mapping[str, Any]) -> Path:
        """Strict JSON: a NaN or infinite value (e.g. a precision with no pair to count) is written as null."""
        return atomic_write_text(self.path / "metrics.json",
                                 json.dumps(_finite_or_none(dict(metrics)), indent=2, sort_keys=True, allow_nan=False))

    def read_metrics(self) -> dict[str, Any]:
        return json.loads((self.path / "metrics.json").read_text())

    # --- checkpoints and figures
    def checkpoint_path(self, name: str) -> Path:
        return self.path / "checkpoints" / f"{name}.pt"

    def save_checkpoint(self, state: Mapping[str, Any], name: str = "last") -> Path:
        return atomic_torch_save(dict(state), self.checkpoint_path(name))

    def load_checkpoint(self, name: str = "last", map_location: str = "cpu") -> dict[str, Any] | None:
        """The checkpoint's state, or None when the run has none yet (a fresh start).

        Our own checkpoints hold optimizer and RNG states (numpy arrays), which `weights_only=True` refuses; network
        weights from elsewhere are loaded by `canu_core.models` with `weights_only=True`.
        """
        path = self.checkpoint_path(name)
        return torch.load(path, map_location=map_location, weights_only=False) if path.is_file() else None

    def figure_path(self, name: str) -> Path:
        return self.path / "figures" / name
