"""Browser fixtures: a live agentbox with the scripted model, and headless Debian Chromium.

Chromium is Debian's package (`make setup` installs it), driven by Playwright for Python; the
browser Playwright would download is never used. Screenshots go to tests/e2e/artifacts/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, Playwright, ViewportSize, sync_playwright

from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.scripted_model import ScriptedModel

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)
TIMEOUT_MS = 20_000


class Watched:
    """A page plus what it did that a test must never see: script errors and dialogs."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def screenshot(self, name: str, *, full_page: bool = False) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture(scope="module")
def e2e_server(
    tmp_path_factory: pytest.TempPathFactory, scripted_model_server: ScriptedModel
) -> Iterator[LiveServer]:
    """A server of this module's own, so its agent list holds only what the browser made."""
    server = LiveServer(
        tmp_path_factory.mktemp("agentbox-e2e") / "data",
        API_KEY,
        AGENTBOX_MODEL_BASE_URL=scripted_model_server.base_url,
        AGENTBOX_MODEL_API_KEY="scripted",
        AGENTBOX_EXEC_TIMEOUT_S="40",
    ).start()
    yield server
    server.stop()


# Module scope: Playwright's sync API keeps an event loop running in this thread while it lives,
# which would stop later tests from running their own.
@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium package")
    browser = playwright_driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


def open_page(browser: Browser, viewport: ViewportSize) -> Iterator[Watched]:
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    watched = Watched(context.new_page())
    yield watched
    context.close()
    assert watched.errors == [], f"the page raised: {watched.errors}"
    assert watched.dialogs == [], f"the page opened dialogs: {watched.dialogs}"


@pytest.fixture
def laptop(browser: Browser) -> Iterator[Watched]:
    yield from open_page(browser, LAPTOP)


@pytest.fixture
def phone(browser: Browser) -> Iterator[Watched]:
    yield from open_page(browser, PHONE)


def sign_in(watched: Watched, server: LiveServer) -> None:
    page = watched.page
    page.goto(server.url + "/")
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Agents").wait_for()


def create_agent(watched: Watched, name: str) -> str:
    """Create an agent from the list and land on its Create and debug screen; returns its id."""
    page = watched.page
    page.get_by_label("New agent's name").fill(name)
    page.get_by_role("button", name="Create agent").click()
    page.get_by_role("heading", name="Setup").wait_for()
    return page.url.rsplit("/", 1)[1]


def add_code_interpreter(watched: Watched) -> None:
    page = watched.page
    page.get_by_role("button", name="Add action").click()
    page.get_by_role("menuitem", name="Code interpreter").click()
    page.locator("#code-interpreter").wait_for()
    page.locator("#save-state", has_text="Saved").wait_for()


def send(watched: Watched, text: str) -> None:
    prompt = watched.page.get_by_label("Message")
    prompt.fill(text)
    prompt.press("Enter")


def wait_for_run(watched: Watched, status: str, timeout_ms: int = 60_000) -> None:
    watched.page.locator(f'.run[data-status="{status}"]').last.wait_for(timeout=timeout_ms)


@pytest.fixture(scope="session", autouse=True)
def fresh_artifacts() -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir()
