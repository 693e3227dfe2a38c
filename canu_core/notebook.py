"""Notebook glue: turn the variables of a papermill `parameters` cell into one validated parameter set.

papermill only warns about a misspelled `-p` name and injects it as a new variable; `params_from_namespace`
sees every variable defined so far, so a name the typed definition does not know is an error, not a silent default.
`papermill -f params/<set>.yaml` injects each key of the file the same way, so files are checked too.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any, Mapping

from .config import Params, make_params

# Names IPython itself puts in a notebook's namespace.
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def user_variables(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The variables a user (or papermill) defined: no IPython bookkeeping, modules or functions."""
    return {
        name: value for name, value in namespace.items()
        if not name.startswith("_") and name not in _IPYTHON_NAMES
        and not isinstance(value, ModuleType) and not callable(value)
    }


def params_from_namespace(namespace: Mapping[str, Any]) -> Params:
    """Validate the parameters cell's variables and papermill's injected ones.

    Call it in the cell right after the `parameters` cell, before anything else is defined:
    `P = params_from_namespace(globals())`.
    """
    return make_params(user_variables(namespace))
