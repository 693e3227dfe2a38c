"""Build the lab's book (`make docs`): README, the four notebooks as executed, and the results pages under docs/, as
a static site (mkdocs, Material theme, mkdocs-jupyter for the notebooks).

    python docs/book/build.py [--refresh] [--schedule PARAMS.yaml] [--executed DIR] [--site DIR]

The executed notebooks are docs/executed/<notebook>.ipynb. A missing one, or all four with --refresh, is executed
first through canu_core's notebook runner on the classroom schedule of params/demo.yaml (UMAPs on, no widgets, no
progress bars), its runs in outputs/book-*: an estimated 15 min of CPU or more for the four (--schedule
params/smoke.yaml: the tiny worlds, about 4 min of CPU, to check the book's machinery). The site is written to
site/; from existing executed copies that takes about 15 s."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ("01_pretrain", "02_clusters", "03_train", "04_ablations")
PRETRAIN_RUN = "book-pretrain"
# What each notebook runs with beyond params/demo.yaml. Notebook 04 runs Table IV's three MMT arms on one seed: the
# study's machinery at the size of a lesson, not its measurement (docs/results.md has that).
OVERRIDES = {
    "01_pretrain": {"run_name": PRETRAIN_RUN},
    "02_clusters": {"run_name": "book-clusters", "pretrain_run": PRETRAIN_RUN},
    "03_train": {"run_name": "book-train", "pretrain_run": PRETRAIN_RUN},
    "04_ablations": {
        "run_name": "book-study",
        "pretrain_run": PRETRAIN_RUN,
        "studies": ["table_iv"],
        "methods": ["mmt"],
        "seeds": [0],
    },
}
SCHEDULE = Path("params") / "demo.yaml"
NOTE = (
    "*This copy was executed by `make docs` with the parameters of `{schedule}`, a short schedule on CPU: its "
    "numbers show what each step does, not the study's results (the Results pages have those).*"
)


def execute(name: str, executed: Path, schedule: Path) -> None:
    """Run notebook `name` headless on `schedule` (a parameter file, relative to the repository) and keep its
    executed copy, for publication, as `executed/<name>.ipynb`."""
    from canu_core import run_notebook

    os.environ["TQDM_DISABLE"] = "1"  # the kernel inherits it: no progress bars in the outputs
    output = run_notebook(name, [ROOT / schedule], {"interactive": False, **OVERRIDES[name]})
    publish(output, executed / f"{name}.ipynb", schedule)


def publish(source: Path, target: Path, schedule: Path = SCHEDULE) -> None:
    """Copy an executed notebook without dumps of its parameters: a note saying what it ran on in place of
    papermill's injected-parameters cell, and no printed `Params(...)` (every field of the set, the cell that
    validates them shows it)."""
    notebook = nbformat.read(source, as_version=4)
    cells = []
    for cell in notebook.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cells.append(nbformat.v4.new_markdown_cell(NOTE.format(schedule=schedule.as_posix())))
            continue
        if cell.cell_type == "code":
            cell.outputs = [output for output in cell.outputs if not is_parameter_dump(output)]
        cells.append(cell)
    notebook.cells = cells
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)


def is_parameter_dump(output) -> bool:
    """A cell's value shown as a parameter set's repr."""
    shown = output.get("data", {}).get("text/plain", "") if output.get("output_type") == "execute_result" else ""
    return shown.startswith("Params(")


def stage(pages: Path, executed: Path) -> None:
    """Lay the book's pages out in `pages`: docs/ as it is, README as the home page (its docs/ links made relative
    to docs/), the executed notebooks under notebooks/ (where README's links point)."""
    shutil.copytree(ROOT / "docs", pages, ignore=shutil.ignore_patterns("__pycache__", "*.ipynb"))
    (pages / "notebooks").mkdir()
    readme = (ROOT / "README.md").read_text()
    (pages / "index.md").write_text(re.sub(r"\]\(docs/", "](", readme))
    for name in NOTEBOOKS:
        shutil.copy2(executed / f"{name}.ipynb", pages / "notebooks" / f"{name}.ipynb")


def build(executed: Path, site: Path) -> None:
    missing = [name for name in NOTEBOOKS if not (executed / f"{name}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(f"no executed copy of {', '.join(missing)} in {executed}: run with --refresh")
    with tempfile.TemporaryDirectory(prefix="canu-book-") as staging:
        pages = Path(staging) / "pages"
        stage(pages, executed)
        config = yaml.safe_load((Path(__file__).parent / "mkdocs.yml").read_text())
        config |= {"docs_dir": str(pages), "site_dir": str(site.resolve())}
        config_path = Path(staging) / "mkdocs.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        quiet = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # no banner about the mkdocs 2 project in every build
        command = [sys.executable, "-m", "mkdocs", "build", "--quiet", "-f", str(config_path)]
        subprocess.run(command, check=True, env=quiet)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--refresh", action="store_true", help="execute the four notebooks again")
    parser.add_argument("--schedule", type=Path, default=SCHEDULE, help="the parameter file notebooks run on")
    parser.add_argument("--executed", type=Path, default=ROOT / "docs" / "executed", help="the executed notebooks")
    parser.add_argument("--site", type=Path, default=ROOT / "site", help="where the site is written")
    args = parser.parse_args(argv)
    for name in NOTEBOOKS:
        if args.refresh or not (args.executed / f"{name}.ipynb").is_file():
            print(f"executing {name} on {args.schedule} ...", flush=True)
            execute(name, args.executed, args.schedule)
    build(args.executed, args.site)
    print(f"site: {args.site / 'index.html'}")


if __name__ == "__main__":
    main()
