import pytest

from canu_core.config import ConfigError
from canu_core.notebook import params_from_namespace


def test_namespace_variables_become_params():
    namespace = {"In": [], "Out": {}, "_i1": "x", "__name__": "__main__", "get_ipython": print,
                 "pytest": pytest, "seed": 5, "run_name": "nb"}
    params = params_from_namespace(namespace)
    assert (params.seed, params.run_name) == (5, "nb")


def test_misspelled_injected_name_fails():
    with pytest.raises(ConfigError, match=r"'run_nam' \(did you mean 'run_name'\?\)"):
        params_from_namespace({"run_name": "nb", "run_nam": "typo"})
