"""The interactive notebook in a real browser: JupyterLab + headless Chromium.

Starts JupyterLab on 127.0.0.1 (random free port, random token) serving a temporary copy
of ``notebooks/09_interactive.ipynb`` (outputs stripped, so every widget seen was made by
this run), opens it in Debian's Chromium driven by Playwright, runs all cells from the
Run menu, then moves the k slider and the bandwidth slider with the keyboard and checks
that the figure in each explorer's Output changed and that no error output appeared.
Screenshots go to ``test-artifacts/`` (gitignored).

Skipped, with the reason, when /usr/bin/chromium or the playwright package is missing.
Playwright never downloads a browser here: it drives the system Chromium.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "09_interactive.ipynb"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
SERVER_START_S = 90  # JupyterLab up and answering /api/status
RUN_ALL_S = 120  # every cell of the notebook executed
REDRAW_S = 30  # a slider move reaches the kernel and the new figure comes back

STDERR_OUTPUT = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'
FIGURE = "{explorer} .clusterlab-figure img"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (localhost)
        return resp.status, resp.read()


def _request(url: str, method: str) -> None:
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=10):  # noqa: S310 (localhost)
        pass


def _stripped_copy(dst: Path) -> None:
    """The notebook without outputs or saved widget state."""
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    nb["metadata"].pop("widgets", None)
    dst.write_text(json.dumps(nb, indent=1))


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a copy of the notebook; always shut down (kernels too)."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} not found: the browser test needs Debian's chromium "
            "(apt-get install chromium); playwright's own browsers are not used"
        )
    pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright")
    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.exists():
        pytest.skip(f"{jupyter} not found: the browser test needs JupyterLab in this environment")

    root = tmp_path / "notebooks"
    root.mkdir()
    # Lab settings: start the notebook's kernel without asking, and no news pop-up.
    settings = tmp_path / "settings" / "@jupyterlab"
    for ext, name, value in (
        ("notebook-extension", "tracker", {"autoStartDefaultKernel": True}),
        ("apputils-extension", "notification", {"fetchNews": "false"}),
    ):
        (settings / ext).mkdir(parents=True, exist_ok=True)
        (settings / ext / f"{name}.jupyterlab-settings").write_text(json.dumps(value))
    _stripped_copy(root / NOTEBOOK.name)
    port, token = _free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"

    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the kernel must use the inline backend, as in a real lab
    env.update(
        CLUSTERLAB_DEVICE="cpu",
        KEOPS_VERBOSE="0",
        PYKEOPS_VERBOSE="0",
        JUPYTER_PREFER_ENV_PATH="1",
        # nothing from the user's own Jupyter set-up (settings, workspaces, kernels)
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        IPYTHONDIR=str(tmp_path / "ipython"),
    )
    cmd = [
        str(jupyter),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log_path = tmp_path / "jupyter.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                status, _ = _get(f"{base}/api/status?token={token}")
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab not up after {SERVER_START_S} s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield {"base": base, "token": token, "root": root, "log": log_path}
    finally:
        _shutdown(proc, base, token)


def _shutdown(proc, base, token):
    """Stop the kernels and the server through the API, then by signal if need be."""
    if proc.poll() is None:
        try:
            _, body = _get(f"{base}/api/kernels?token={token}")
            for kernel in json.loads(body):
                _request(f"{base}/api/kernels/{kernel['id']}?token={token}", "DELETE")
            _request(f"{base}/api/shutdown?token={token}", "POST")
            proc.wait(timeout=20)
        except Exception:
            pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)  # the server's own process group (start_new_session)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue


def _figure_src(page, explorer: str) -> str:
    return page.locator(FIGURE.format(explorer=explorer)).first.get_attribute("src") or ""


def _wait_figure_change(page, explorer: str, old: str) -> str:
    page.wait_for_function(
        """([sel, old]) => {
            const img = document.querySelector(sel);
            return img !== null && img.src !== old;
        }""",
        arg=[FIGURE.format(explorer=explorer), old],
        timeout=REDRAW_S * 1000,
    )
    return _figure_src(page, explorer)


def _readout(page, slider: str) -> str:
    return page.locator(f"{slider} .widget-readout").first.inner_text().strip()


def _press_right(page, slider: str) -> None:
    handle = page.locator(f"{slider} .noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    page.keyboard.press("ArrowRight")


def _start_kernel(page, lab) -> None:
    """Wait until the notebook's kernel is connected and idle (accepting the kernel
    dialog if one asks)."""
    idle = page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if dialog.count():
            dialog.locator(".jp-mod-accept").first.click()
        elif idle.count() and page.locator(".jp-Dialog").count() == 0:
            _, body = _get(f"{lab['base']}/api/kernels?token={lab['token']}")
            kernels = json.loads(body)
            if any(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels):
                return
        page.wait_for_timeout(250)
    raise AssertionError(f"the kernel did not start within {SERVER_START_S} s")


def _run_all(page, attempts: int = 3) -> None:
    """Run -> Run All Cells from the menu bar, until the first code cell is queued or run
    (a click that lands while the lab is still wiring the kernel can be lost)."""
    first_prompt = page.locator(".jp-CodeCell .jp-InputPrompt").first
    for _ in range(attempts):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            # textContent, not innerText: JupyterLab skips rendering off-screen cells
            if any(ch in (first_prompt.text_content() or "") for ch in "*0123456789"):
                return
            page.wait_for_timeout(250)
    raise AssertionError(f"Run All Cells did not start the notebook ({attempts} tries)")


def _errors_on_page(page) -> list[str]:
    texts = page.locator(STDERR_OUTPUT).all_inner_texts()
    bad = [t for t in texts if "Traceback" in t or "Error" in t]
    bad += page.locator(".clusterlab-explorer b:has-text('error in the redraw')").all_inner_texts()
    return bad


def test_sliders_redraw_the_figures_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    t_start = time.perf_counter()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.goto(f"{lab['base']}/lab/tree/{NOTEBOOK.name}?token={lab['token']}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=SERVER_START_S * 1000)
            _start_kernel(page, lab)
            _run_all(page)

            for explorer in (".clusterlab-kmeans", ".clusterlab-meanshift"):
                page.wait_for_selector(
                    FIGURE.format(explorer=explorer), state="attached", timeout=RUN_ALL_S * 1000
                )
            # wait for the whole notebook (later cells use the explorers too)
            page.wait_for_function(
                """() => {
                    const ind = document.querySelector('.jp-Notebook-ExecutionIndicator');
                    const prompts = [...document.querySelectorAll('.jp-InputPrompt')];
                    return ind && ind.dataset.status === 'idle'
                        && prompts.length > 0
                        && !prompts.some(p => p.textContent.includes('*'));
                }""",
                timeout=RUN_ALL_S * 1000,
            )
            t_ran = time.perf_counter()
            page.screenshot(path=str(ARTIFACTS / "browser-after-run-all.png"))
            assert _errors_on_page(page) == [], "error output after Run All"

            # -- the k slider, moved with the keyboard
            km = page.locator(".clusterlab-kmeans").first
            km.scroll_into_view_if_needed()
            km.screenshot(path=str(ARTIFACTS / "browser-kmeans-before.png"))
            before = _figure_src(page, ".clusterlab-kmeans")
            assert before.startswith("data:image/png;base64,")
            assert _readout(page, ".clusterlab-k-slider") == "6"
            _press_right(page, ".clusterlab-k-slider")
            after = _wait_figure_change(page, ".clusterlab-kmeans", before)
            assert after.startswith("data:image/png;base64,") and after != before
            assert _readout(page, ".clusterlab-k-slider") == "7"
            page.wait_for_function(
                "() => document.querySelector('.clusterlab-kmeans').innerText.includes('k = 7')",
                timeout=REDRAW_S * 1000,
            )
            km.screenshot(path=str(ARTIFACTS / "browser-kmeans-after.png"))

            # -- the bandwidth slider, moved with the keyboard
            ms = page.locator(".clusterlab-meanshift").first
            ms.scroll_into_view_if_needed()
            ms.screenshot(path=str(ARTIFACTS / "browser-meanshift-before.png"))
            before = _figure_src(page, ".clusterlab-meanshift")
            assert before.startswith("data:image/png;base64,")
            h_before = float(_readout(page, ".clusterlab-bandwidth-slider"))
            _press_right(page, ".clusterlab-bandwidth-slider")
            after = _wait_figure_change(page, ".clusterlab-meanshift", before)
            assert after != before
            h_after = float(_readout(page, ".clusterlab-bandwidth-slider"))
            assert h_after > h_before
            ms.screenshot(path=str(ARTIFACTS / "browser-meanshift-after.png"))

            # -- "use estimate" moves the slider to cl.estimate_bandwidth's value
            before = after
            page.locator(".clusterlab-use-estimate").first.click()
            after = _wait_figure_change(page, ".clusterlab-meanshift", before)
            h_est = float(_readout(page, ".clusterlab-bandwidth-slider"))
            assert h_est > 3 * h_after  # on the six blobs the estimate is ~4x the start
            ms.screenshot(path=str(ARTIFACTS / "browser-meanshift-estimate.png"))

            assert _errors_on_page(page) == [], "error output after moving the sliders"
            page.screenshot(path=str(ARTIFACTS / "browser-final.png"), full_page=True)
        except Exception:
            try:
                page.screenshot(path=str(ARTIFACTS / "browser-failure.png"), full_page=True)
            except Exception:
                pass
            raise
        finally:
            browser.close()
    t_end = time.perf_counter()
    print(
        f"\nbrowser test: run all {t_ran - t_start:.1f} s, sliders {t_end - t_ran:.1f} s, "
        f"screenshots in {ARTIFACTS.relative_to(ROOT)}/"
    )


def test_artifacts_folder_is_gitignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "test-artifacts/" in ignored  # the screenshots are never committed
