"""The page in a real browser: Playwright for Python driving Chromium against the local stack.

Chromium is the system's (`/usr/bin/chromium`, Debian's `chromium` package; CHROMIUM names
another) or else the one `playwright install chromium` downloads. Without either the tests skip,
saying how to get one, except in CI (`CI=true`), where a missing browser fails the run."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.stack import DEV_API_KEY

INSTALL_HINT = (
    "the browser tests need Chromium: `sudo apt-get install chromium` (Debian, Ubuntu), or "
    "`.venv/bin/playwright install chromium`, or CHROMIUM=/path/to/chromium"
)
# Records every Content-Security-Policy violation, before the page's own script runs.
VIOLATIONS_SCRIPT = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def system_chromium() -> str | None:
    named = os.environ.get("CHROMIUM")
    if named:
        return named
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


def no_browser(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; in CI the browser tests must run: {INSTALL_HINT}", pytrace=False)
    pytest.skip(f"{reason}: {INSTALL_HINT}")


@pytest.fixture(scope="session")
def browser() -> Iterator:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        no_browser("Playwright is not installed (make install installs it)")
    executable = system_chromium()
    with sync_playwright() as playwright:
        try:
            # No sandbox: CI containers run as root, where Chromium refuses its sandbox.
            launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        except Error as exc:
            no_browser(f"Chromium did not start ({str(exc).splitlines()[0]})")
        yield launched
        launched.close()


class PageUnderTest:
    """The page at the stack's root in a fresh browser context, with its console kept."""

    def __init__(self, page, url: str):
        self.page, self.url = page, url
        self.console: list[str] = []
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        page.add_init_script(VIOLATIONS_SCRIPT)

    def open(self) -> PageUnderTest:
        self.page.goto(self.url)
        return self

    def use_key(self, key: str = DEV_API_KEY) -> None:
        self.page.fill("#key-input", key)
        self.page.press("#key-input", "Enter")

    def value(self, script: str):
        # evaluate() runs outside the page's CSP; wait_for_function would be refused (no unsafe-eval).
        return self.page.evaluate(script)

    def wait_for(self, script: str, timeout: float = 30, what: str = "") -> object:
        """Poll `script` (a JS function) until it returns something truthy; fail on the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.value(script)
            if result:
                return result
            time.sleep(0.1)
        raise AssertionError(f"{what or script} not true after {timeout}s; console: {self.console}")

    def csp_violations(self) -> list[str]:
        reported = self.value("() => window.__cspViolations || []")
        return reported + [line for line in self.console if "Content Security Policy" in line]


@pytest.fixture
def page(browser, stack, emulator) -> Iterator[PageUnderTest]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    under_test = PageUnderTest(context.new_page(), stack.api_url + "/")
    yield under_test
    violations = under_test.csp_violations()
    context.close()
    assert violations == [], violations
