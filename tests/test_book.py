"""The book (`make docs`, docs/book/build.py) built from small stand-in executed notebooks into a tmp folder, served on
127.0.0.1 and opened page by page in headless Chromium: every page answers and every image in it loads."""

from __future__ import annotations

import base64
import functools
import importlib.util
import io
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import nbformat
import pytest
from lab_browser import CHROMIUM_ARGS, chromium_executable
from PIL import Image

from canu_core.runs import project_root

pytestmark = pytest.mark.browser

NOTEBOOKS = ("01_pretrain", "02_clusters", "03_train", "04_ablations")
INJECTED = 'run_name = "book-parameters-dump"'
BROKEN_IMAGES = "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"


def load_build():
    spec = importlib.util.spec_from_file_location("book_build", project_root() / "docs" / "book" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stand_in_notebook(name: str) -> nbformat.NotebookNode:
    """What papermill leaves, in small: a title, the injected-parameters cell, a cell whose output is a figure."""
    image = io.BytesIO()
    Image.new("RGB", (40, 20), (200, 30, 30)).save(image, format="PNG")
    injected = nbformat.v4.new_code_cell(INJECTED, metadata={"tags": ["injected-parameters"]})
    validated = nbformat.v4.new_code_cell("P = params_from_namespace(globals())\nP")
    validated.outputs = [
        nbformat.v4.new_output("execute_result", data={"text/plain": "Params(run_name='book-parameters-dump')"}),
        nbformat.v4.new_output("stream", name="stdout", text="run folder: outputs/book\n"),
    ]
    figure = nbformat.v4.new_code_cell("plot_umap(points, labelings)")
    figure.outputs = [
        nbformat.v4.new_output(
            "display_data", data={"image/png": base64.b64encode(image.getvalue()).decode(), "text/plain": "<Figure>"}
        )
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {name}"), injected, validated, figure])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The book built as `make docs` builds it, from stand-ins published as build.py publishes what papermill ran."""
    base = tmp_path_factory.mktemp("book")
    build = load_build()
    (base / "papermill").mkdir()
    for name in NOTEBOOKS:
        nbformat.write(stand_in_notebook(name), base / "papermill" / f"{name}.ipynb")
        build.publish(base / "papermill" / f"{name}.ipynb", base / "executed" / f"{name}.ipynb")
    build.main(["--executed", str(base / "executed"), "--site", str(base / "site")])
    return base / "site"


@pytest.fixture(scope="module")
def server(site):
    """A static file server over the site on a free port of 127.0.0.1, shut down after the module."""
    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def test_the_published_notebooks_say_how_they_ran_not_their_parameters(site):
    for name in NOTEBOOKS:
        page = (site / "notebooks" / f"{name}.html").read_text()
        assert "book-parameters-dump" not in page and "run folder: outputs/book" in page
        assert "executed by <code>make docs</code> with the parameters of <code>params/demo.yaml</code>" in page


def test_every_page_and_every_image_loads(site, server, tmp_path):
    from playwright.sync_api import sync_playwright

    # the pages mkdocs made (docs/'s own .html files, older notebook exports, are copied as they are, not built)
    built = [path.relative_to(site).as_posix() for path in site.rglob("*.html") if path.name != "404.html"]
    pages = sorted(path for path in built if not (project_root() / "docs" / path).is_file())
    book = {"index.html", "results.html", "fidelity.html", "archive.html", "guide.html", "study/fashion/index.html"}
    assert book | {f"notebooks/{name}.html" for name in NOTEBOOKS} <= set(pages)
    failures, images = {}, {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            for path in pages:
                response = page.goto(f"{server}/{path}", wait_until="load")
                broken = page.evaluate(BROKEN_IMAGES)
                if response is None or response.status != 200 or broken:
                    failures[path] = (response and response.status, broken)
                images[path] = page.evaluate("document.images.length")
            page.goto(f"{server}/results.html", wait_until="load")
            page.screenshot(path=str(tmp_path / "results.png"))
        finally:
            browser.close()
    assert failures == {}
    # the pages that show figures show them: each notebook's (a data: URI) and the results pages'
    assert all(images[f"notebooks/{name}.html"] >= 1 for name in NOTEBOOKS)
    assert images["results.html"] >= 10 and images["index.html"] >= 1
