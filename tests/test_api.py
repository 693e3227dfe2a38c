"""The public API and the house's layering: notebooks and benchmarks import nothing deeper than a sub-package, the
package's public names resolve, and no lower layer imports a higher one."""

import ast
import json
import re
from pathlib import Path

import pytest

import canu_core

ROOT = Path(__file__).resolve().parents[1]
# Each layer and the layers of ours it must not import (engine -> models / losses / cluster / data -> nothing above).
LOWER_LAYERS = {
    "models": ("engine", "viz", "study", "jobs", "notebook", "widgets", "cluster", "data", "evaluation"),
    "losses": ("engine", "viz", "study", "jobs", "notebook", "widgets", "cluster", "data", "evaluation"),
    "cluster": ("engine", "viz", "study", "jobs", "notebook", "widgets", "data", "evaluation"),
    "data": ("engine", "viz", "study", "jobs", "notebook", "widgets", "evaluation"),
    "evaluation": ("engine", "viz", "study", "jobs", "notebook", "widgets"),
    "viz": ("engine", "study", "jobs", "notebook", "widgets"),
    "engine": ("viz", "study", "jobs", "notebook", "widgets"),
}


def imported_modules(source: str, package: str | None = None) -> list[str]:
    """Every canu_core module `source` imports at run time (not those under `if TYPE_CHECKING:`), absolute (relative
    imports resolved against `package`)."""
    tree = ast.parse(source)
    type_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [name for name in found if name == "canu_core" or name.startswith("canu_core.")]


def notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    code = ("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
    return "\n".join(re.sub(r"^\s*[%!].*$", "", cell, flags=re.M) for cell in code)  # magics are not Python


USER_CODE = sorted(ROOT.glob("notebooks/*.ipynb")) + sorted(ROOT.glob("benchmarks/*.py"))


@pytest.mark.parametrize("path", USER_CODE, ids=lambda p: p.name)
def test_notebooks_and_benchmarks_import_nothing_deeper_than_a_sub_package(path):
    source = notebook_code(path) if path.suffix == ".ipynb" else path.read_text()
    deep = [name for name in imported_modules(source) if name.count(".") > 1]
    assert deep == [], f"{path.name} imports {deep}: import from canu_core or its sub-packages"


def test_every_public_name_resolves_to_what_its_name_says():
    for name in canu_core.__all__:
        assert getattr(canu_core, name) is not None, name
    assert callable(canu_core.evaluate) and callable(canu_core.adapt) and callable(canu_core.pretrain)
    with pytest.raises(AttributeError, match="no attribute 'train_everything'"):
        canu_core.train_everything  # noqa: B018


@pytest.mark.parametrize("layer", sorted(LOWER_LAYERS))
def test_no_layer_imports_one_above_it(layer):
    package_root = ROOT / "canu_core"
    files = sorted((package_root / layer).rglob("*.py")) or [package_root / f"{layer}.py"]
    upward = []
    for path in files:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        package = package.removesuffix(".__init__")
        for name in imported_modules(path.read_text(), package):
            parts = name.split(".")
            if len(parts) > 1 and parts[1] in LOWER_LAYERS[layer]:
                upward.append(f"{path.relative_to(ROOT)} imports {name}")
    assert upward == []


def test_the_process_group_helpers_know_no_run_folder_or_notebook():
    """distributed.py is the process group's collective steps only; launching a run under torchrun (which knows
    notebooks and run folders) is training.py's."""
    path = ROOT / "canu_core" / "distributed.py"
    assert imported_modules(path.read_text(), "canu_core") == []
