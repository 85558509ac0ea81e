"""The playground's Console in headless Chromium against a live agentbox with NO model configured:
containers, uploads, cells whose output streams in, charts, errors, interrupts and downloads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import FilePayload, Locator, Page

from tests.conftest import API_KEY
from tests.e2e.conftest import PHONE, Watched, sign_in
from tests.live_server import LiveServer

SALES = b"region,amount\nnorth,12.5\nsouth,30\neast,7.25\nwest,80\n"
SALES_TOTAL = (12.5 + 30 + 7.25 + 80) * 3  # what the cell prints: 389.25
TICKS = "import time\nfor i in range(4):\n    print(f'tick {i}', flush=True)\n    time.sleep(1.5)"
LINE_CHART = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('three points')\nplt.show()"
BAR_CHART = "import matplotlib.pyplot as plt\nplt.bar(['a', 'b', 'c'], [3, 1, 2])\nplt.show()\nprint('drawn')"
SLEEPER = "x = 41\nimport time\nprint('sleeping', flush=True)\ntime.sleep(60)"


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """No AGENTBOX_MODEL_BASE_URL: the console must work on a server that has no model at all."""
    server = LiveServer(
        tmp_path_factory.mktemp("agentbox-console") / "data", API_KEY, AGENTBOX_EXEC_TIMEOUT_S="40"
    ).start()
    yield server
    server.stop()


def api(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)


def open_console(watched: Watched, server: LiveServer) -> Page:
    page = watched.page
    sign_in(watched, server)
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Console").click()
    page.get_by_role("heading", name="Cells").wait_for()
    return page


def run(page: Page, code: str) -> Locator:
    """Type a cell and run it with Shift+Enter; the new cell's locator."""
    before = page.locator(".cell").count()
    editor = page.get_by_label("Code")
    editor.fill(code)
    editor.press("Shift+Enter")
    cell = page.locator(".cell").nth(before)
    cell.wait_for()
    return cell


def wait_status(cell: Locator, status: str, timeout_ms: int = 30_000) -> None:
    cell.page.wait_for_function(
        "([cell, status]) => cell.dataset.status === status",
        arg=[cell.element_handle(), status],
        timeout=timeout_ms,
    )


def loaded(img: Locator) -> int:
    img.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    return int(img.evaluate("img => img.naturalWidth"))


def test_console_runs_code_with_no_model(laptop: Watched, console_server: LiveServer, tmp_path: Path) -> None:
    page = laptop.page
    sign_in(laptop, console_server)
    hint = page.locator(".console-hint")
    assert "no model needed" in hint.inner_text()
    hint.get_by_role("link", name="Console").click()
    page.get_by_text("Run Python in a sandbox — no model needed").wait_for()

    page.get_by_role("button", name="New container").click()
    page.wait_for_url("**/#/console/cntr_*")
    container_id = page.url.rsplit("/", 1)[1]
    page.locator("#container-meta", has_text="running").wait_for()
    assert page.locator("#container-pick").input_value() == container_id

    page.locator("#console-files").set_input_files(
        FilePayload(name="sales.csv", mimeType="text/csv", buffer=SALES)
    )
    page.locator("#console-file-list .file", has_text="sales.csv").wait_for()

    cell = run(
        page,
        "import pandas as pd\ndf = pd.read_csv('/mnt/data/sales.csv')\nprint('TOTAL', df.amount.sum() * 3)",
    )
    wait_status(cell, "ok")
    assert f"TOTAL {SALES_TOTAL}" in cell.locator(".cell-output").inner_text()
    assert cell.locator(".cell-code span.hljs-keyword").count() > 0  # the code is highlighted
    assert page.get_by_label("Code").input_value() == ""  # the editor is ready for the next cell

    # Live: the first line is on the page while the cell is still running.
    cell = run(page, TICKS)
    cell.locator(".cell-output", has_text="tick 0").wait_for(timeout=5_000)
    assert cell.get_attribute("data-status") == "running"
    assert "tick 3" not in cell.locator(".cell-output").inner_text()
    assert page.get_by_role("button", name="Interrupt").is_visible()
    laptop.screenshot("10-console-live-output")
    wait_status(cell, "ok")
    assert cell.locator(".cell-output").inner_text().splitlines() == [f"tick {i}" for i in range(4)]

    cell = run(page, "import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)")
    wait_status(cell, "ok")
    out, err = cell.locator(".cell-output .stdout"), cell.locator(".cell-output .stderr")
    assert "to stdout" in out.inner_text() and "to stderr" in err.inner_text()
    color = "node => getComputedStyle(node).color"
    assert out.evaluate(color) != err.evaluate(color)

    cell = run(page, "def ratio(a, b):\n    return a / b\n\nratio(1, 0)")
    wait_status(cell, "error")
    error = cell.locator(".cell-error")
    assert "ZeroDivisionError: division by zero" in error.locator("strong").inner_text()
    traceback = error.locator("pre.traceback").inner_text()
    assert "return a / b" in traceback and "in ratio" in traceback
    assert "error" in cell.locator(".cell-status").inner_text()

    cell = run(page, LINE_CHART)
    wait_status(cell, "ok")
    assert loaded(cell.locator("figure.image img")) > 0
    assert cell.locator("figure.image img").get_attribute("src").startswith("blob:")  # type: ignore[union-attr]

    # The Run button works too; the file the cell wrote is listed and downloads with its bytes.
    page.get_by_label("Code").fill(
        "with open('/mnt/data/squares.txt', 'w') as f:\n    f.write(' '.join(str(i * i) for i in range(6)))"
    )
    page.get_by_role("button", name="Run", exact=True).click()
    cell = page.locator(".cell").last
    wait_status(cell, "ok")
    cell.locator(".cell-files a", has_text="squares.txt").wait_for()
    row = page.locator("#console-file-list .file", has_text="squares.txt")
    with page.expect_download() as download_info:
        row.get_by_role("button", name="Download squares.txt").click()
    download = download_info.value
    assert download.suggested_filename == "squares.txt"
    saved = tmp_path / "squares.txt"
    download.save_as(saved)
    assert saved.read_bytes() == b"0 1 4 9 16 25"
    with page.expect_download() as download_info:
        page.locator("#console-file-list .file", has_text="sales.csv").get_by_role("button").click()
    download_info.value.save_as(tmp_path / "sales.csv")
    assert (tmp_path / "sales.csv").read_bytes() == SALES

    page.locator(".cell").nth(3).scroll_into_view_if_needed()
    laptop.screenshot("11-console-laptop")
    with api(console_server) as client:
        paths = {f["path"] for f in client.get(f"/containers/{container_id}/files").json()["data"]}
    assert {"/mnt/data/sales.csv", "/mnt/data/squares.txt"} <= paths

    # The cells of a container are remembered: a reload shows them, chart included.
    page.reload()
    page.locator(".cell").nth(5).wait_for()
    assert page.locator(".cell").count() == 6
    assert f"TOTAL {SALES_TOTAL}" in page.locator(".cell").first.inner_text()
    assert loaded(page.locator(".cell").nth(4).locator("figure.image img")) > 0
    assert page.locator('.cell[data-status="error"] .cell-error').count() == 1
    page.locator(".cell").first.get_by_role("button", name="Edit").click()
    assert "read_csv('/mnt/data/sales.csv')" in page.get_by_label("Code").input_value()


def test_interrupt_stops_a_long_cell(laptop: Watched, console_server: LiveServer) -> None:
    page = open_console(laptop, console_server)
    cell = run(page, SLEEPER)  # no container chosen: Run makes one
    cell.locator(".cell-output", has_text="sleeping").wait_for(timeout=10_000)
    assert page.url.split("#/console/")[1].startswith("cntr_")
    assert cell.get_attribute("data-status") == "running"
    started = time.monotonic()
    page.get_by_role("button", name="Interrupt").click()
    wait_status(cell, "interrupted", timeout_ms=10_000)
    assert time.monotonic() - started < 8
    assert "interrupted" in cell.locator(".cell-status").inner_text()
    page.get_by_role("button", name="Interrupt").wait_for(state="hidden")
    laptop.screenshot("12-console-interrupted")
    # The kernel survives an interrupt: the variables are still there.
    cell = run(page, "print('answer', x + 1)")
    wait_status(cell, "ok")
    assert "answer 42" in cell.locator(".cell-output").inner_text()


def test_console_on_a_phone(phone: Watched, console_server: LiveServer) -> None:
    page = open_console(phone, console_server)
    phone.screenshot("13-console-phone-empty")
    cell = run(page, BAR_CHART)
    wait_status(cell, "ok")
    assert loaded(cell.locator("figure.image img")) > 0
    cell = run(page, "1 / 0")
    wait_status(cell, "error")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "sideways scroll"
    page.locator(".cell").first.scroll_into_view_if_needed()
    phone.screenshot("14-console-phone")
