"""Drive the system Chromium through Playwright for the dashboard's end-to-end tests (no browser download)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from helpers import wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
VIEWPORT = (1280, 800)
"""The wall screen the dashboard is designed for."""


def find_chromium() -> str | None:
    """The browser to drive: $EMO7ION_CHROMIUM, else the first Chromium on PATH (Debian's package: chromium)."""
    configured = os.environ.get("EMO7ION_CHROMIUM")
    if configured:
        return configured
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def browser_missing() -> str | None:
    """Why a browser test cannot run here, or None when Playwright and a Chromium are both present."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]')"
    if find_chromium() is None:
        return "no Chromium found (apt-get install chromium, as scripts/setup.sh does, or set EMO7ION_CHROMIUM)"
    return None


@contextlib.contextmanager
def open_dashboard(url: str, screenshot: Path | None = None, viewport: tuple[int, int] = VIEWPORT,
                   timeout_s: float = 10.0) -> Iterator[Page]:
    """A headless Chromium page showing ``url``; on leaving, a screenshot to ``screenshot`` (when given,
    failures included) and an AssertionError if the page threw an uncaught JavaScript error."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:
        raise RuntimeError(browser_missing())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-extensions"])
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.set_default_timeout(timeout_s * 1000)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url, wait_until="domcontentloaded")
            try:
                yield page
            finally:
                if screenshot is not None:
                    screenshot.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(screenshot))
            if errors:
                raise AssertionError("the page threw JavaScript errors:\n" + "\n".join(errors))
        finally:
            browser.close()


def text_of(page: Page, selector: str) -> str:
    """The trimmed text of the first element matching ``selector``, or '' when there is none."""
    locator = page.locator(selector).first
    return (locator.text_content() or "").strip() if locator.count() else ""


def wait_for_text(page: Page, selector: str, expected: str, timeout_s: float = 10.0) -> str:
    """Wait until ``selector``'s text contains ``expected`` (case-insensitive); return the whole text."""
    last = ""

    def found() -> str | None:
        nonlocal last
        last = text_of(page, selector)
        return last if expected.lower() in last.lower() else None

    try:
        return wait_until(found, timeout_s, what=f"{selector!r} to contain {expected!r}")
    except AssertionError as error:
        raise AssertionError(f"{error}; its text was {last!r}") from None


def wait_for_attribute(page: Page, selector: str, name: str, expected: str, timeout_s: float = 10.0) -> None:
    """Wait until the first element matching ``selector`` has attribute ``name`` equal to ``expected``."""
    last: str | None = None

    def found() -> bool:
        nonlocal last
        locator = page.locator(selector).first
        last = locator.get_attribute(name) if locator.count() else None
        return last == expected

    try:
        wait_until(found, timeout_s, what=f"{selector!r} to have {name}={expected!r}")
    except AssertionError as error:
        raise AssertionError(f"{error}; it was {last!r}") from None


def wait_for_count(page: Page, selector: str, at_least: int = 1, timeout_s: float = 10.0) -> int:
    """Wait until at least ``at_least`` elements match ``selector``; return how many do."""
    return wait_until(lambda: (lambda n: n if n >= at_least else 0)(page.locator(selector).count()),
                      timeout_s, what=f"{at_least} element(s) matching {selector!r}")
