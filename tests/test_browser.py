"""The four notebooks in JupyterLab, in headless Chromium: each prepared on the smoke set with `interactive = True`
(papermill's prepare-only), opened, Run All; no cell may end in an error, the widgets must render, and moving one
control must change what the widget shows. A screenshot of each notebook is kept in the test's tmp folder.

Notebooks 02 and 03 read the source models that notebook 01's run leaves, so the tests run in order."""

from __future__ import annotations

import json
import os
import time

import papermill
import pytest
import yaml
from lab_browser import (
    CELL_OUTPUTS,
    CHROMIUM_ARGS,
    JupyterLab,
    chromium_executable,
    error_outputs,
    open_notebook,
    run_all,
)
from tiny import TINY

from canu_core.config import make_params
from canu_core.notebook import injected, parameters_cell
from canu_core.runs import project_root

pytestmark = [pytest.mark.notebook, pytest.mark.browser]

SMOKE = project_root() / "params" / "smoke.yaml"
PRETRAIN = "browser_pretrain"
NOTEBOOKS = {
    "01_pretrain": {"run_name": PRETRAIN},
    "02_clusters": {"run_name": "browser_clusters", "pretrain_run": PRETRAIN},
    "03_train": {"run_name": "browser_train", "pretrain_run": PRETRAIN},
    # notebook 01's run above is finished, so the study only runs its three Table IV runs
    "04_ablations": {
        "run_name": "browser_study",
        "pretrain_run": PRETRAIN,
        "studies": ["table_iv"],
        "methods": ["mmt"],
        "seeds": [0],
        "umap_figures": False,  # as params/study.yaml: the study draws its own UMAPs, not one per run
    },
}
RUN_ALL_TIMEOUT_MS = 300_000


@pytest.fixture(scope="module")
def lab(tiny_data_root, tmp_path_factory):
    """JupyterLab over a folder of the four notebooks prepared for the smoke set; its runs go to a tmp outputs/."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    root.mkdir()
    for name, own in NOTEBOOKS.items():
        values = {
            **yaml.safe_load(SMOKE.read_text()),
            "data_root": str(tiny_data_root),
            "device": "cpu",
            "threads": 1,
            "interactive": True,
            **TINY,
            **own,
        }
        make_params(values)  # the set is valid before a kernel starts
        source = project_root() / "notebooks" / f"{name}.ipynb"
        papermill.execute_notebook(
            str(source),
            str(root / source.name),
            parameters=injected(parameters_cell(source), values),
            prepare_only=True,
            kernel_name="python3",
            progress_bar=False,
        )
    # numba's cache stays where every kernel finds it (viz.embedding.cache_umap_compilation): a fresh one here made
    # the first kernel compile UMAP's functions again
    env = {**os.environ, "CANU_OUTPUTS": str(base / "outputs")}
    server = JupyterLab(root, env, log=base / "jupyter.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_executable(), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def wait_for_new_picture(read, before: str, timeout: float = 90.0) -> str:
    """Poll `read()` until it shows a picture (a PNG data URL) and differs from `before`. A redrawn interact output
    empties, then shows what the function displays (notebook 02's table), then the figure it returns: reading it in
    between would find the text without its picture."""
    deadline = time.monotonic() + timeout
    now = ""
    while time.monotonic() < deadline:
        now = read()
        if now != before and "data:image/png" in now:
            return now
        time.sleep(0.5)
    raise AssertionError(f"no new picture in the widget's output within {timeout} s; it shows: {now[:300]!r}")


def picture(widget) -> str:
    """What an interact widget shows: its output's images (as data URLs) and text."""
    output = widget.locator(".widget-output")
    sources = output.locator("img").evaluate_all("images => images.map(image => image.src).join('|')")
    return sources + output.inner_text()


def check_widgets_render(page, expected: int) -> list:
    widgets = page.locator(".widget-interact")
    widgets.first.wait_for(timeout=60_000)
    assert widgets.count() == expected
    body = page.locator("body").inner_text()
    assert "Error displaying widget" not in body
    assert "<Figure size" not in body  # a figure shown as its text repr instead of a picture
    return [widgets.nth(k) for k in range(expected)]


def choose_another_option(select) -> None:
    """Select the option after the selected one (the first after the last)."""
    current, count = select.evaluate("element => [element.selectedIndex, element.options.length]")
    select.select_option(index=(current + 1) % count)


def move_slider(page, widget, value: str) -> None:
    readout = widget.locator(".widget-readout").first
    readout.scroll_into_view_if_needed()
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_notebook_runs_in_jupyterlab_and_its_widgets_respond(name, lab, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        open_notebook(page, lab, name)
        cells = run_all(page, RUN_ALL_TIMEOUT_MS)
        assert error_outputs(cells) == []
        assert all(cell["execution_count"] is not None for cell in cells)  # Run All reached the last cell
        if name == "02_clusters":
            browser_widget, recluster = check_widgets_render(page, expected=2)
            shown = wait_for_new_picture(lambda: picture(browser_widget), "")  # the chosen cluster's images
            choose_another_option(browser_widget.locator("select").first)
            wait_for_new_picture(lambda: picture(browser_widget), shown)

            button = recluster.get_by_role("button", name="Re-cluster")
            button.click()
            first = wait_for_new_picture(lambda: picture(recluster), "")
            move_slider(page, recluster, "0.9")
            button.click()
            wait_for_new_picture(lambda: picture(recluster), first)
        else:
            (widget,) = check_widgets_render(page, expected=1)
            shown = wait_for_new_picture(lambda: picture(widget), "")
            if widget.locator("select").count():
                choose_another_option(widget.locator("select").last)
            else:
                move_slider(page, widget, "7")
            wait_for_new_picture(lambda: picture(widget), shown)
    finally:  # the screenshot is kept whatever happened: it shows where a failing notebook stopped
        page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
        (tmp_path / f"{name}.cells.json").write_text(json.dumps(page.evaluate(CELL_OUTPUTS), indent=1))
        page.close()
    assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
