import logging

import pytest

from canu_core.config import ConfigError
from canu_core.notebook import injected_names_allowed, params_from_namespace


def test_namespace_variables_become_params():
    namespace = {
        "In": [],
        "Out": {},
        "_i1": "x",
        "__name__": "__main__",
        "get_ipython": print,
        "pytest": pytest,
        "seed": 5,
        "run_name": "nb",
    }
    params = params_from_namespace(namespace)
    assert (params.seed, params.run_name) == (5, "nb")


def test_misspelled_injected_name_fails():
    with pytest.raises(ConfigError, match=r"'run_nam' \(did you mean 'run_name'\?\)"):
        params_from_namespace({"run_name": "nb", "run_nam": "typo"})


def test_run_notebook_silences_only_papermills_warning_about_names_its_cell_does_not_list(caplog):
    """run_notebook validates every name before papermill sees it, so papermill's warning about a name missing from
    the parameters cell is noise there (a study passes world_seed to notebook 03, say); its other warnings stay."""
    papermill = logging.getLogger("papermill")
    with caplog.at_level(logging.WARNING, logger="papermill"), injected_names_allowed():
        papermill.warning("Passed unknown parameter: world_seed")
        papermill.warning("Input notebook does not contain a cell with tag 'parameters'")
    assert [r.getMessage() for r in caplog.records] == ["Input notebook does not contain a cell with tag 'parameters'"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="papermill"):
        papermill.warning("Passed unknown parameter: world_seed")  # outside run_notebook: warned as papermill does
    assert [r.getMessage() for r in caplog.records] == ["Passed unknown parameter: world_seed"]


@pytest.mark.parametrize("notebook", ["01_pretrain", "02_clusters", "03_train", "04_ablations"])
def test_every_notebook_validates_its_parameters_right_after_the_cell_papermill_injects_after(notebook):
    """papermill only warns about an unknown -p name and injects its cell right after the `parameters` cell, so the
    next cell must validate every name: what stops a misspelled name in each notebook (run in a kernel once, for
    notebook 03, by test_notebook_03)."""
    import nbformat

    from canu_core.runs import project_root

    cells = nbformat.read(project_root() / "notebooks" / f"{notebook}.ipynb", as_version=4).cells
    code = [cell for cell in cells if cell.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert "P = params_from_namespace(globals())" in code[1].source


# What a notebook's parameters cell sets on purpose to something else than the lab-wide default.
OWN_VALUES = {"run_name", "seed", "pretrain_run"}
# ... and what one notebook alone sets so. Notebook 04 starts with Table IV alone, the study a class can run in about
# two hours on a 2-core CPU, where config.Params names every study of the default world; `studies` picks which runs
# a study holds, never how a run trains, so the regime this test guards stays the same (parameter files and `make`
# targets name their own studies, which override the cell).
NOTEBOOK_OWN_VALUES = {"04_ablations": {"studies"}}


@pytest.mark.parametrize("notebook", ["01_pretrain", "02_clusters", "03_train", "04_ablations"])
def test_parameters_cells_repeat_the_typed_defaults(notebook):
    """A parameters cell shows the defaults a reader can change; one that drifted from config.Params (the default
    regime changed) would silently run another regime than params/synthetic_default.yaml documents."""
    import dataclasses

    from canu_core.config import Params
    from canu_core.notebook import parameters_cell
    from canu_core.runs import project_root

    values = parameters_cell(project_root() / "notebooks" / f"{notebook}.ipynb")
    defaults = dataclasses.asdict(Params())
    drifted = {
        name: (value, defaults[name])
        for name, value in values.items()
        if name in defaults
        and name not in OWN_VALUES | NOTEBOOK_OWN_VALUES.get(notebook, set())
        and value != defaults[name]
    }
    assert not drifted, f"{notebook}: parameters cell value vs config.Params default: {drifted}"


def test_synthetic_default_file_is_notebook_03s_default_run():
    """params/synthetic_default.yaml writes out what notebook 03 runs with no parameter file: each value equals
    notebook 03's parameters cell, or config.Params's default for a name the cell does not set."""
    import dataclasses

    import yaml

    from canu_core.config import Params
    from canu_core.notebook import parameters_cell
    from canu_core.runs import project_root

    cell = parameters_cell(project_root() / "notebooks" / "03_train.ipynb")
    expected = {**dataclasses.asdict(Params()), **cell}
    written = yaml.safe_load((project_root() / "params" / "synthetic_default.yaml").read_text())
    # except the source models: the cell opens make demo's (Run All after `make demo`), the file notebook 01's run
    assert (cell["pretrain_run"], written["pretrain_run"]) == ("demo-pretrain", "pretrain")
    differing = {
        name: (value, expected[name])
        for name, value in written.items()
        if name != "pretrain_run" and value != expected[name]
    }
    assert not differing, f"synthetic_default.yaml value vs notebook 03's default run: {differing}"


def test_a_rerun_is_checked_with_the_notebooks_own_cell_values(tmp_path, monkeypatch):
    """Notebook 04's cell sets seed 1: a run folder it recorded must be accepted when the same command runs again
    (the check before the kernel starts once compared it with config.Params's seed 0 and refused every rerun)."""
    import papermill

    from canu_core.config import make_params
    from canu_core.notebook import parameters_cell, run_notebook
    from canu_core.runs import RunFolder, project_root

    monkeypatch.setenv("CANU_OUTPUTS", str(tmp_path))
    notebook = project_root() / "notebooks" / "04_ablations.ipynb"
    cell = parameters_cell(notebook)
    assert cell["seed"] == 1 and cell["run_name"] == "study"
    RunFolder.for_run("study").record(make_params({**cell, "studies": ["table_iv"]}), "04_ablations")
    executed = []
    monkeypatch.setattr(
        papermill,
        "execute_notebook",
        lambda source, output, **_: (executed.append(output), open(output, "w").write("{}")),
    )
    assert run_notebook("04_ablations", [], {"studies": ["table_iv"]}) == tmp_path / "study" / "04_ablations.ipynb"
    assert len(executed) == 1
