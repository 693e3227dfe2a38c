"""Notebook glue: turn the variables of a papermill `parameters` cell into one validated parameter set.

papermill only warns about a misspelled `-p` name and injects it as a new variable; `params_from_namespace`
sees every variable defined so far, so a name the typed definition does not know is an error, not a silent default.
`papermill -f params/<set>.yaml` injects each key of the file the same way, so files are checked too.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping, Sequence

from .config import Params, as_dict, make_params, read_yaml
from .runs import (
    DiskFullError,
    RunFolder,
    disk_full_error,
    holding,
    outputs_root,
    project_root,
    resolve_path,
    resolve_run,
)

# Names IPython itself puts in a notebook's namespace.
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def user_variables(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The variables a user (or papermill) defined: no IPython bookkeeping, modules or functions."""
    return {
        name: value
        for name, value in namespace.items()
        if not name.startswith("_")
        and name not in _IPYTHON_NAMES
        and not isinstance(value, ModuleType)
        and not callable(value)
    }


def params_from_namespace(namespace: Mapping[str, Any]) -> Params:
    """Validate the parameters cell's variables and papermill's injected ones.

    Call it in the cell right after the `parameters` cell, before anything else is defined:
    `P = params_from_namespace(globals())`.
    """
    return make_params(user_variables(namespace))


def injected(cell: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The values papermill has to inject: those the notebook's parameters cell (`parameters_cell`) names, and any
    other that differs from its default (the rest would only make papermill warn about names its cell does not
    list)."""
    defaults = as_dict(Params())
    return {k: v for k, v in values.items() if k in cell or v != defaults.get(k)}


class _InjectedNamesFilter(logging.Filter):
    """Drops papermill's "Passed unknown parameter" warning: every name run_notebook injects is a Params field,
    validated before the kernel starts, and a parameters cell lists only the names a reader changes most."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Passed unknown parameter")


@contextlib.contextmanager
def injected_names_allowed():
    """While it lasts, papermill does not warn about names missing from a notebook's parameters cell."""
    logger, quiet = logging.getLogger("papermill"), _InjectedNamesFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def parameters_cell(notebook: Path) -> dict[str, Any]:
    """The values a notebook's `parameters` cell assigns (literals only): what the notebook runs with before
    papermill injects anything."""
    import ast

    import nbformat

    cells = nbformat.read(notebook, as_version=4).cells
    source = next(cell.source for cell in cells if "parameters" in cell.metadata.get("tags", []))
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
    }


def run_notebook(
    name: str,
    parameter_files: Sequence[str | Path] = (),
    parameters: Mapping[str, Any] | None = None,
    log_output: bool = False,
    exercises: bool = True,
) -> Path:
    """Execute `notebooks/<name>.ipynb` headless with papermill and keep the executed copy in its run folder
    (`outputs/<run_name>/<name>.ipynb`). Parameters are validated, the run folder's lock taken (held until the
    kernel ends; the kernel inherits it) and the folder checked against its record, all before the kernel starts.
    The copy is written under `outputs/.executing/` and moved into the run folder only when the notebook ends
    without error: a failed run leaves the folder's executed copy as it was, and its own in
    `outputs/.failed/<run_name>/` (the error says where; a copy the failure cut off is not kept). A full disk is
    reported as one DiskFullError line. `exercises` False runs it without its exercises and their answers (a study's
    runs: teaching cells measure nothing the study keeps)."""
    import nbformat
    import papermill

    from .teaching import without_exercises

    files_and_overrides: dict[str, Any] = {}
    for path in parameter_files:
        files_and_overrides.update(read_yaml(resolve_path(path)))
    files_and_overrides.update(parameters or {})
    notebooks = project_root() / "notebooks"
    source = notebooks / f"{name}.ipynb"
    if not source.is_file():
        available = sorted(p.stem for p in notebooks.glob("[0-9]*.ipynb"))
        raise FileNotFoundError(f"no notebook {source}; available: {', '.join(available)}")
    # what the kernel will run with: the notebook's own parameters cell, then the files and overrides papermill
    # injects (a cell value such as notebook 04's seed 1 counts, or a rerun would be refused against its record)
    cell = parameters_cell(source)
    params = make_params({**cell, **files_and_overrides})
    with holding(RunFolder.for_run(params.run_name)):  # another process in this folder is refused here
        run, _ = resolve_run(params, name)  # a folder of another run is refused here, before anything is written
        executing = outputs_root() / ".executing" / params.run_name / source.name
        executing.parent.mkdir(parents=True, exist_ok=True)
        executed_source = source
        if not exercises:
            executed_source = executing.with_name(f"{source.stem}.without-exercises.ipynb")
            nbformat.write(without_exercises(nbformat.read(source, as_version=4)), executed_source)
        try:
            with injected_names_allowed():
                papermill.execute_notebook(
                    str(executed_source),
                    str(executing),
                    parameters=injected(cell, files_and_overrides),
                    kernel_name="python3",
                    cwd=str(notebooks),
                    progress_bar=False,
                    log_output=log_output,
                )
        except BaseException as err:
            full = _disk_full(err, executing)
            notes = _keep_failed_copy(executing, outputs_root() / ".failed" / params.run_name / source.name)
            if full is not None:
                full.add_note(notes)
                raise full from None
            err.add_note(notes)
            raise
        finally:
            if executed_source != source:
                executed_source.unlink()
        output = run.path / source.name
        output.parent.mkdir(parents=True, exist_ok=True)
        os.replace(executing, output)
        with contextlib.suppress(OSError):
            executing.parent.rmdir()
    return output


def _keep_failed_copy(executing: Path, failed: Path) -> str:
    """Move a failed run's executed copy to `failed` when it is a whole notebook; say where, or why it is not kept."""
    import nbformat

    if not executing.is_file():
        return "no executed copy was written"
    try:
        nbformat.read(executing, as_version=4)
    except Exception:  # whatever the reader finds wrong, the copy was cut off
        executing.unlink()
        note = "the executed copy was cut off by the failure and was not kept"
    else:
        failed.parent.mkdir(parents=True, exist_ok=True)
        os.replace(executing, failed)
        note = f"executed copy of the failed notebook: {failed}"
    with contextlib.suppress(OSError):  # not empty if another process is running the same run_name
        executing.parent.rmdir()
    return note


def _disk_full(err: BaseException, executing: Path) -> DiskFullError | None:
    """The full disk behind a failure, as one line: the kernel's own DiskFullError, or papermill's write of the
    executed copy that found no space (anywhere in the chain of errors)."""
    seen: BaseException | None = err
    while seen is not None:
        if getattr(seen, "ename", None) == "DiskFullError":
            return DiskFullError(errno.ENOSPC, seen.evalue)
        if isinstance(seen, OSError):
            found = disk_full_error(seen, executing)
            if isinstance(found, DiskFullError):
                return found
        seen = seen.__cause__ or seen.__context__
    return None
