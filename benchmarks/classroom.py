"""The classroom path in a real browser, timed: after `make demo`, notebooks 02 and 03 opened in JupyterLab as
`make lab` opens them, on their own defaults, and run with Run All, as a student would. Prints each notebook's wall
time and every error output; exits 1 if any cell ended in an error.

The notebooks run on copies (JupyterLab saves outputs into the file it runs), with their runs written to a fresh
outputs folder holding only the demo's source models, so that notebook 03 trains as it would for a student.
Needs Chromium (see tests/lab_browser.py) and `make demo` first.

  python benchmarks/classroom.py
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lab_browser import (  # noqa: E402 - the tests' JupyterLab helpers
    CHROMIUM_ARGS,
    JupyterLab,
    chromium_executable,
    error_outputs,
    open_notebook,
    run_all,
)

from canu_core.runs import outputs_root  # noqa: E402

NOTEBOOKS = ("02_clusters", "03_train")
DEMO_SOURCE = "demo-pretrain"  # the source models both notebooks' defaults read
RUN_ALL_TIMEOUT_MS = 1_800_000


def main() -> int:
    from playwright.sync_api import sync_playwright

    demo = outputs_root() / DEMO_SOURCE
    if not (demo / "checkpoints").is_dir():
        raise SystemExit(f"no source models in {demo}: run `make demo` first")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root, outputs = base / "notebooks", base / "outputs"
        root.mkdir()
        shutil.copytree(demo, outputs / DEMO_SOURCE)
        for name in NOTEBOOKS:
            shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", root)
        lab = JupyterLab(root, {**os.environ, "CANU_OUTPUTS": str(outputs)}, log=base / "jupyter.log")
        failed = False
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=chromium_executable(), headless=True, args=CHROMIUM_ARGS
                )
                for name in NOTEBOOKS:
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    open_notebook(page, lab, name)
                    start = time.monotonic()
                    outputs_of_cells = run_all(page, RUN_ALL_TIMEOUT_MS)
                    seconds = time.monotonic() - start
                    errors = error_outputs(outputs_of_cells)
                    ran = sum(cell["execution_count"] is not None for cell in outputs_of_cells)
                    print(
                        f"{name}: Run All {seconds:.0f} s, {ran} of {len(outputs_of_cells)} code cells ran, "
                        f"{len(errors)} error output(s)"
                    )
                    for error in errors:
                        print(f"  {error}")
                    failed |= bool(errors) or ran < len(outputs_of_cells)
                    page.close()
                browser.close()
        finally:
            lab.stop()
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
