"""JupyterLab in a real browser for the tests: a `jupyter lab` server on 127.0.0.1 (free port, no token) over a
folder of prepared notebooks, and headless Chromium (Debian's `chromium`) driven by Playwright.

JupyterLab is started with its application exposed (`window.jupyterapp`), so a test runs a notebook with the same
command the Run menu calls and reads the cells' outputs from the notebook's model, not from pixels; the widgets are
checked and moved in the page itself, since that is where they break.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# Chromium's own network chatter is refused on a closed machine (and slows every start); these flags silence it.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every cell rendered, not only those in view (JupyterLab 4 renders a window of cells by default): the widgets of
# the last cells must exist in the page for the test to find them.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def chromium_executable() -> str:
    """Debian's chromium (CI installs it: .ci/run); Playwright's own browser download cannot be reached here."""
    found = os.environ.get("CANU_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError(
            "the browser tests need Chromium: `apt-get install chromium` (Debian's package; .ci/run "
            "installs it), or set CANU_CHROMIUM to a Chromium executable"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterLab:
    """A `jupyter lab` server over `root`, started on a free port of 127.0.0.1 without token; `stop()` ends it."""

    def __init__(self, root: Path, env: dict[str, str], log: Path):
        self.root = root
        self.port = free_port()
        settings = root.parent / "lab-settings"
        for name, values in LAB_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={root.parent / 'workspaces'}",
        ]
        if os.geteuid() == 0:  # CI containers and this machine run as root
            command.append("--allow-root")
        self.log = log.open("w")
        self.process = subprocess.Popen(command, cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_until_up(timeout=120)

    def _wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"jupyter lab did not answer on {self.url} within {timeout} s; see {self.log.name}")

    def notebook_url(self, name: str) -> str:
        """The notebook alone in a workspace of its own: a page does not reopen what an earlier page left open."""
        return f"{self.url}/lab/workspaces/{Path(name).stem}/tree/{name}?reset"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# --- JavaScript run in the page, on JupyterLab's application object

_PANEL = "window.jupyterapp.shell.currentWidget"

KERNEL_IDLE = """() => {
    const app = window.jupyterapp;
    const panel = app && app.shell.currentWidget;
    const kernel = panel && panel.sessionContext && panel.sessionContext.session && panel.sessionContext.session.kernel;
    return !!kernel && kernel.status === 'idle' && panel.content.widgets.length > 0;
}"""


def notebook_ready(name: str) -> str:
    """JavaScript: the notebook `name` is the current widget and its kernel is idle."""
    return f"""() => {{
        const app = window.jupyterapp;
        return !!app && !!app.shell.currentWidget && app.shell.currentWidget.context.path === {json.dumps(name)}
            && ({KERNEL_IDLE})();
    }}"""


# Starts every cell, as Run > Run All Cells does.
RUN_ALL = "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }"

# Run All has finished: the kernel is idle and every code cell has run, or one ended in an error (Run All stops there).
RUN_ALL_DONE = f"""() => {{
    const cells = {_PANEL}.content.widgets.filter(cell => cell.model.type === 'code');
    const failed = cells.some(cell => cell.model.outputs.toJSON().some(output => output.output_type === 'error'));
    const ran = cells.every(cell => cell.model.executionCount !== null);
    return ({KERNEL_IDLE})() && (failed || ran);
}}"""

# Each code cell: its execution count and its outputs, as nbformat JSON.
CELL_OUTPUTS = f"""() => {_PANEL}.content.widgets.filter(cell => cell.model.type === 'code').map(cell => ({{
    execution_count: cell.model.executionCount, outputs: cell.model.outputs.toJSON()}}))"""


def open_notebook(page, lab: JupyterLab, name: str) -> None:
    """Open notebook `name` (its file name without .ipynb) in a workspace of its own and wait for its kernel."""
    page.goto(lab.notebook_url(f"{name}.ipynb"))
    page.wait_for_function(notebook_ready(f"{name}.ipynb"), timeout=120_000)


def run_all(page, timeout_ms: int) -> list[dict]:
    """Run All in the open notebook and wait for the last cell (or the first error); the code cells' outputs
    (`CELL_OUTPUTS`)."""
    page.evaluate(RUN_ALL)
    page.wait_for_function(RUN_ALL_DONE, timeout=timeout_ms, polling=1000)
    return page.evaluate(CELL_OUTPUTS)


def error_outputs(cells: list[dict]) -> list[str]:
    """The error outputs of the cells (`CELL_OUTPUTS`), one line each: exception name and value."""
    return [
        f"{output['ename']}: {output['evalue']}"
        for cell in cells
        for output in cell["outputs"]
        if output["output_type"] == "error"
    ]
