"""Run folders: `outputs/<run_name>/` holds params, per-epoch history, metrics, checkpoints and figures.

A run folder is never clobbered: one process at a time works in it (`hold_run`: an OS lock, taken before anything
is checked, released when the process ends however it ends), and `open_run` compares the parameters asked for with
the ones the folder recorded and refuses any difference (each one listed) before anything is written; `amend` is the
one way to continue a run with more epochs or other learning rates, and the change is recorded. Everything is
written atomically (temporary file, fsync, rename), so an interrupted run never leaves a half-written file and
resumes from its last checkpoint.
Checkpoints are read with `weights_only=True`: a file that carries pickled code is refused, never run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import io
import json
import math
import os
import pickle
import platform
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch
import yaml

from .config import RENAMED, STUDY_FIELDS, ConfigError, Params, as_dict, check_run_name, parse_yaml
from .reproducibility import set_threads

PROJECT_MARKER = "pyproject.toml"
# Parameters that change what a run shows, where its data lie or how a sweep is organised, not what it computes:
# never compared (a dataset moved to another data_root is the same dataset).
NOT_COMPARED = frozenset(
    {
        "run_name",
        "data_root",
        "interactive",
        "umap_figures",
        "amend",
        *STUDY_FIELDS,
    }
)
# What `amend` may change in an existing run: its length (epochs only grow) and its learning rates.
AMENDABLE = frozenset({"epochs", "adapt_epochs", "lr", "mmt_lr", "ssg_lr", "disc_lr"})
GROWING = frozenset({"epochs", "adapt_epochs"})
# Parameters whose default is not what the code computed before they existed (MMT's pretraining recipe, its
# Jaccard distance, SSG's source-distance term): a run recorded without them ran something none of their values
# reproduces, so it is never taken to have had the default.
UNRECORDED_NOT_DEFAULT = frozenset({"jaccard", "pretrain_triplet", "pretrain_target_forward", "ssg_source_weight"})
UNRECORDED = "(not recorded: the run predates this parameter)"
# Checkpoints renamed: new name ending -> old (the best epoch by target labels was "best_oracle", a word the oracle
# condition, canu_condition oracle, also used).
LEGACY_CHECKPOINTS = {"_best_by_target_labels": "_best_oracle"}
# History columns renamed: old -> new (one name per concept: the function, the column and the report all say
# camera_probe_accuracy).
LEGACY_COLUMNS = {"camera_probe_acc": "camera_probe_accuracy"}


class RunConflictError(ConfigError):
    """A run folder that holds another run than the one asked for."""


class RunBusyError(RunConflictError):
    """A run folder another process is working in."""


class UnfinishedRunError(ConfigError):
    """A run named as an input (pretrain_run) that stopped before its last epoch."""


class CheckpointError(OSError):
    """A checkpoint that cannot be used: damaged, incomplete, or carrying pickled code."""


class DiskFullError(OSError):
    """A write that found no space left: the folder and its free space in one line."""

    def __str__(self) -> str:
        return self.strerror


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


def outputs_root() -> Path:
    """`outputs/` under the project root; the CANU_OUTPUTS environment variable moves it (the tests use it to keep
    their runs out of the repository)."""
    return resolve_path(os.environ.get("CANU_OUTPUTS", "outputs"))


def git_commit() -> str:
    """The commit the code was run from, with '+dirty' when the tree has uncommitted changes; 'unknown' outside git."""
    root = project_root()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def cpu_model() -> str:
    """The processor's name: with the thread count, what decides the last bits of a CPU run's sums."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Write through a temporary file that is flushed to disk before it replaces `path` (a leftover one, from a
    write that was interrupted, is overwritten), so `path` holds the old or the new content, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, mode) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
    except BaseException as err:  # a full disk, or an interrupt: no temporary left behind
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise disk_full_error(err, path) from None
        raise
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path


def disk_full_error(err: OSError, path: Path) -> OSError:
    """`err` as one line naming the folder and its free space when the disk is full; any other error unchanged."""
    if err.errno not in (errno.ENOSPC, errno.EDQUOT):
        return err
    free = shutil.disk_usage(path.parent).free if path.parent.is_dir() else 0
    return DiskFullError(
        err.errno,
        f"no space left to write {path.name} in {path.parent} ({free / 2**20:.1f} MiB free): free some space and "
        "run the same command again (it resumes from the last checkpoint; nothing written before is lost)",
    )


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return _atomic_write(Path(path), lambda file: file.write(text), mode="w")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save through memory, then to disk with Python's own writes: torch's zip writer reports a full disk as
    a RuntimeError ("unexpected pos ..."), Python's as the OSError it is."""
    buffer = io.BytesIO()
    torch.save(_loadable(obj), buffer)
    return _atomic_write(Path(path), lambda file: file.write(buffer.getbuffer()))


def _loadable(value: Any) -> Any:
    """`value` with numpy arrays as tensors and numpy scalars as Python numbers: what `weights_only=True` reads."""
    if isinstance(value, Mapping):
        return type(value)((key, _loadable(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_loadable(item) for item in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> Any:
    """A checkpoint's content, read with `weights_only=True` (tensors and plain values only). A file that needs
    anything else to be unpickled could run code while loading: it is refused, naming the file and what it held.
    A damaged or incomplete file is an error naming the file and what to do."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        lines = str(err).splitlines() or [type(err).__name__]
        found = next((line.strip() for line in lines if "Unsupported" in line), lines[0])
        raise CheckpointError(
            f"refused to load {path}: it holds more than tensors and plain values ({found}), and unpickling it "
            "could run code that came with the file. The lab's own checkpoints never do: do not use this file; "
            "rerun the run that should have written it"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as err:  # torch's zip reader fails in any of these
        size = path.stat().st_size if path.is_file() else 0
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"cannot read checkpoint {path} ({size} bytes: {reason}): the file is damaged or incomplete (an "
            f"interrupted copy?). Restore it from a copy, or delete it and run {_writer(path)} again with the same "
            "parameters: the run rebuilds what is missing (a lost model checkpoint by training that run again from "
            "the start, which its seed repeats on the same machine)"
        ) from None


def _writer(checkpoint: Path) -> str:
    """What wrote `checkpoint`, as a command a user can repeat: its run folder's notebook and run_name."""
    folder = RunFolder(checkpoint.parent.parent)
    with contextlib.suppress(OSError, ConfigError, AttributeError, TypeError):
        return f"notebook {folder.read_params()['notebook']} with run_name {folder.path.name!r}"
    return f"the notebook of run {folder.path.name!r}"


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def parameter_differences(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{name: (recorded value, wanted value)} for each compared parameter of `wanted` that the record holds
    otherwise. A parameter added to the lab after the run was recorded counts as having had its default, unless its
    default changed what the code computes (UNRECORDED_NOT_DEFAULT); `threads` None (torch's default) takes whatever
    the run recorded."""
    recorded = {**as_dict(Params()), **{name: UNRECORDED for name in UNRECORDED_NOT_DEFAULT}, **recorded}
    return {
        name: (recorded[name], value)
        for name, value in wanted.items()
        if name not in NOT_COMPARED
        and name in recorded
        and recorded[name] != value
        and not (name == "threads" and value is None)
    }


def describe_differences(differences: Mapping[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{name}: {old!r} there, {new!r} asked" for name, (old, new) in sorted(differences.items()))


class RunFolder:
    """One run's folder. Files: params.yaml, history.csv, metrics.json, checkpoints/, figures/."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def for_run(cls, run_name: str, outputs: str | os.PathLike | None = None) -> "RunFolder":
        """`outputs/<run_name>` (see `outputs_root`); run_name must be a plain folder name."""
        check_run_name(run_name)
        return cls((resolve_path(outputs) if outputs else outputs_root()) / run_name)

    # --- parameters
    @property
    def params_path(self) -> Path:
        return self.path / "params.yaml"

    def read_params(self) -> dict[str, Any]:
        """The recorded parameters; a record that is not one (emptied, damaged, hand-edited into invalid YAML) is an
        error naming the file and what will work."""
        damaged = (
            f"restore it from a copy, or move the folder {self.path} away and run again (a new run starts in its place)"
        )
        try:
            record = parse_yaml(self.params_path.read_text(), str(self.params_path))
        except ConfigError as err:
            raise RunConflictError(f"{err}: the run's parameter record is damaged; {damaged}") from None
        if record is None:
            found = "it is empty"
        elif not isinstance(record, dict):
            found = f"it holds a {type(record).__name__}"
        elif "notebook" not in record:
            found = "it names no notebook"
        else:
            return {RENAMED.get(name, name): value for name, value in record.items()}
        raise RunConflictError(f"{self.params_path}: {found}, not a run's parameter record; {damaged}")

    def record(self, params: Params, notebook: str) -> Path:
        """Save the parameters the run goes on with, once `open_run` has accepted them and the inputs are checked.
        A new run records them with the git commit and CPU it ran on; a run continued from another commit or CPU,
        amended, or shown with other uncompared parameters (a study rebuilt with other studies or seeds, data moved
        to another data_root) keeps its first record with those values updated, and an entry in `continued` saying
        what changed and when. The temporary files of writes that a killed run left behind are removed first."""
        values = {k: v for k, v in as_dict(params).items() if k != "amend"}
        machine = {"git_commit": git_commit(), "cpu_model": cpu_model()}
        self.remove_temporaries()
        if not self.started():
            return atomic_write_text(
                self.params_path, yaml.safe_dump({"notebook": notebook, **values, **machine}, sort_keys=False)
            )
        recorded = self.read_params()
        refusal = refused_change(self, recorded, params, notebook)
        if refusal:  # open_run refuses it first; this keeps a record from ever holding a change nobody allowed
            raise RunConflictError(refusal)
        changed = parameter_differences(recorded, values)
        changed |= {  # what is not compared still says what the run shows now: a study's studies, a data_root
            k: (recorded.get(k), v) for k, v in values.items() if k in NOT_COMPARED and recorded.get(k) != v
        }
        moved = {k: v for k, v in machine.items() if recorded.get(k) != v}
        if not changed and not moved:
            return self.params_path
        entry = {
            "after_history_rows": len(self.read_history()),
            **machine,
            "changed": {k: [old, new] for k, (old, new) in changed.items()},
        }
        updated = {
            **recorded,
            **{k: new for k, (_, new) in changed.items()},
            "continued": [*recorded.get("continued", []), entry],
        }
        return atomic_write_text(self.params_path, yaml.safe_dump(updated, sort_keys=False))

    def written(self) -> list[Path]:
        """What the folder holds beside its parameter record (hidden temporaries left out)."""
        if not self.path.is_dir():
            return []
        return [p for p in self.path.iterdir() if p != self.params_path and not p.name.startswith(".")]

    def started(self) -> bool:
        """Whether the folder holds a run that produced something: a record alone (a start that stopped before
        its first result) holds nothing to keep, and the next start records its own parameters in its place."""
        return self.params_path.is_file() and bool(self.written())

    def remove_temporaries(self) -> None:
        """Delete the temporary files of writes that were interrupted (a killed run's `.<name>.tmp`)."""
        for leftover in list(self.path.rglob(".*.tmp")):  # none when the folder does not exist yet
            leftover.unlink()

    # --- per-epoch history
    @property
    def history_path(self) -> Path:
        return self.path / "history.csv"

    def read_history(self) -> pd.DataFrame:
        """The history, its columns under their current names (LEGACY_COLUMNS: a run written before a rename)."""
        if not self.history_path.is_file():
            return pd.DataFrame()
        return pd.read_csv(self.history_path).rename(columns=LEGACY_COLUMNS)

    def append_history(self, row: Mapping[str, Any], key: tuple[str, ...] = ("epoch",)) -> pd.DataFrame:
        """Add one epoch's row; a row with the same `key` values already present (a resumed run) is replaced. The
        read and the write hold a lock on the run folder: processes that train parts of one run at once (the
        demo's two source models) each add their rows without losing the other's."""
        self.path.mkdir(parents=True, exist_ok=True)
        folder = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            history = self.read_history()
            if not history.empty and all(k in row and k in history for k in key):
                same = pd.concat([history[k] == row[k] for k in key], axis=1).all(axis=1)
                history = history[~same]
            history = pd.concat([history, pd.DataFrame([dict(row)])], ignore_index=True)
            atomic_write_text(self.history_path, history.to_csv(index=False))
        finally:
            os.close(folder)  # releases the lock
        return history

    # --- metrics
    def write_metrics(self, metrics: Mapping[str, Any]) -> Path:
        """Strict JSON: a NaN or infinite value (e.g. a precision with no pair to count) is written as null."""
        return atomic_write_text(
            self.path / "metrics.json",
            json.dumps(_finite_or_none(dict(metrics)), indent=2, sort_keys=True, allow_nan=False),
        )

    def read_metrics(self) -> dict[str, Any]:
        return json.loads((self.path / "metrics.json").read_text())

    # --- checkpoints and figures
    def checkpoint_path(self, name: str) -> Path:
        """Where checkpoint `name` lives: under its name, or under its older one (LEGACY_CHECKPOINTS) in a run that
        wrote it before the rename, which then keeps that file."""
        path = self.path / "checkpoints" / f"{name}.pt"
        for new, old in LEGACY_CHECKPOINTS.items():
            if name.endswith(new) and not path.exists():
                legacy = path.with_name(f"{name.removesuffix(new)}{old}.pt")
                if legacy.exists():
                    return legacy
        return path

    def save_checkpoint(self, state: Mapping[str, Any], name: str = "last") -> Path:
        return atomic_torch_save(dict(state), self.checkpoint_path(name))

    def load_checkpoint(self, name: str = "last", map_location: str = "cpu") -> dict[str, Any] | None:
        """The checkpoint's state, or None when the run has none yet (a fresh start); see `read_checkpoint`."""
        path = self.checkpoint_path(name)
        return read_checkpoint(path, map_location) if path.is_file() else None

    def figure_path(self, name: str) -> Path:
        return self.path / "figures" / name


def refused_change(run: RunFolder, recorded: Mapping[str, Any], params: Params, notebook: str) -> str | None:
    """Why `params` may not go on in `run`, whose record is `recorded`; None when they may (the same parameters,
    or an amendment `amend` allows)."""
    if recorded.get("notebook", notebook) != notebook:
        return (
            f"run folder {run.path} holds a run of notebook {recorded['notebook']}: give this "
            f"{notebook} run its own folder (-p run_name <name>)"
        )
    differences = parameter_differences(recorded, as_dict(params))
    refused = {
        k: v for k, v in differences.items() if not params.amend or k not in AMENDABLE or (k in GROWING and v[1] < v[0])
    }
    if not refused:
        return None
    advice = (
        "amend changes only " + ", ".join(sorted(AMENDABLE)) + " (epochs only grow)"
        if params.amend
        else "to continue it with more epochs or other learning rates, add -p amend true"
        if all(k in AMENDABLE for k in refused)
        else "to keep both, give this run another run_name; or delete that folder"
    )
    return f"run folder {run.path} holds a run with other parameters ({describe_differences(refused)}): {advice}"


def resolve_run(params: Params, notebook: str) -> tuple[RunFolder, Params]:
    """The run folder of `params.run_name` for `notebook` (its name, e.g. "03_train") and the parameters to run
    with; reads, never writes.

    A folder that recorded another notebook's run, or other parameters, is refused, each difference listed:
    resuming it would mix two experiments under one record. With `amend`, only more epochs and other learning rates
    are accepted (AMENDABLE). A folder whose record is all it holds (`started` is False) takes any parameters.
    `threads` comes from the record when there is one, so a resume stays on the bit-exact path."""
    run = RunFolder.for_run(params.run_name)
    if not run.started():
        leftovers = run.written()  # without a record: not a run of this lab's
        if leftovers:
            raise RunConflictError(
                f"run folder {run.path} holds {', '.join(p.name for p in leftovers[:5])} but no "
                "params.yaml: it is not a run of this lab's; move it away or pick another run_name"
            )
        return run, dataclasses.replace(params, threads=params.threads or torch.get_num_threads())
    recorded = run.read_params()
    refusal = refused_change(run, recorded, params, notebook)
    if refusal:
        raise RunConflictError(refusal)
    threads = params.threads or recorded.get("threads") or torch.get_num_threads()
    return run, dataclasses.replace(params, threads=threads)


def open_run(params: Params, notebook: str, lock: bool = True) -> tuple[RunFolder, Params]:
    """The first call of a notebook or job, before its inputs are read: this process takes the run folder's lock
    (`hold_run`; `lock` False only for the ranks of a torchrun launch whose rank 0 holds it), then `resolve_run`,
    then sets its thread count to the run's. Call `run.record(params, notebook)` once the inputs are checked."""
    if lock:
        hold_run(RunFolder.for_run(params.run_name))
    run, params = resolve_run(params, notebook)
    set_threads(params.threads)
    return run, params


# --- one process per run folder

# The run folders this process holds, by lock file (open descriptors holding an flock), and the environment
# variable through which its children (a papermill kernel, torchrun's ranks, a demo's workers) learn of them.
_HELD: dict[Path, int] = {}
_HELD_GUARD = threading.Lock()
HELD_BY_ANCESTOR = "CANU_RUN_LOCKS"


def lock_path(run: RunFolder) -> Path:
    """Beside the run folders, not in one: a start that is refused creates no folder."""
    return run.path.parent / ".locks" / f"{run.path.name}.lock"


def hold_run(run: RunFolder) -> bool:
    """Take `run`'s lock for this process (an flock: the operating system releases it when the process ends, however
    it ends, so a killed run never leaves its folder blocked). Returns whether it was taken now: False when this
    process, or the process that started it (a notebook runner and its kernel, torchrun and its ranks), already
    holds it. A folder another process holds is refused in one line naming that process."""
    path = lock_path(run)
    with _HELD_GUARD:
        if path in _HELD or _held_by_ancestor(path):
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(descriptor)
            os.close(descriptor)
            raise RunBusyError(
                f"run folder {run.path} is in use by {holder}: one process at a time works in a run folder; wait "
                "for it to end (then the same command resumes or reads the run), or give this run another run_name"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, json.dumps(_this_process()).encode())
        _HELD[path] = descriptor
        _export_held()
        return True


def release_run(run: RunFolder) -> None:
    """Let go of `run`'s lock (a notebook runner, once its kernel has ended); nothing if this process holds none."""
    with _HELD_GUARD:
        descriptor = _HELD.pop(lock_path(run), None)
        if descriptor is not None:
            os.close(descriptor)  # releases the flock
            _export_held()


@contextlib.contextmanager
def holding(run: RunFolder):
    """`run`'s lock for the duration of a block; released after it only if the block's start took it."""
    taken = hold_run(run)
    try:
        yield
    finally:
        if taken:
            release_run(run)


def _this_process() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "command": " ".join(sys.argv)[:300],
    }


def _holder(descriptor: int) -> str:
    """Who holds a lock, from what it wrote into the lock file (read again for up to a second: a process that has
    just taken the lock may not have written yet)."""
    for _ in range(20):
        os.lseek(descriptor, 0, os.SEEK_SET)
        with contextlib.suppress(ValueError, KeyError, TypeError):
            found = json.loads(os.read(descriptor, 4096).decode() or "null")
            return f"process {found['pid']} on {found['host']} (started {found['started']}: {found['command']})"
        time.sleep(0.05)
    return "another process (it has not said which yet)"


def _export_held() -> None:
    """Tell this process's future children which lock files it holds, keeping what its own ancestors hold."""
    inherited = {path: pid for path, pid in _inherited().items() if pid != os.getpid()}
    held = inherited | {str(path): os.getpid() for path in _HELD}
    os.environ[HELD_BY_ANCESTOR] = json.dumps(held)


def _inherited() -> dict[str, int]:
    with contextlib.suppress(ValueError, AttributeError):
        return dict(json.loads(os.environ.get(HELD_BY_ANCESTOR, "{}")))
    return {}


def _held_by_ancestor(path: Path) -> bool:
    """Whether a process that started this one (directly or not) holds the lock file `path`."""
    pid = _inherited().get(str(path))
    return pid is not None and pid != os.getpid() and pid in _ancestors()


def _ancestors() -> set[int]:
    """The process ids above this one (Linux's /proc; elsewhere the parent alone)."""
    found, pid = set(), os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return found


class DivergenceError(FloatingPointError):
    """Training diverged: a loss or feature that is not finite, or a loss term past `loss_limit`."""
