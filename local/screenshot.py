"""`make screenshot`: the picture of the page the README shows (docs/page.png), taken in
Chromium from a local stack of its own, after a few images were made through the page."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from local.stack import DEV_API_KEY, QUICK_EMULATOR, LocalStack, free_port
from local.template import ROOT

OUT = ROOT / "docs" / "page.png"
PROMPTS = ["a lighthouse at dusk, oil painting", "a red fox in snow, watercolor"]
CHROMIUM = "/usr/bin/chromium"


def take(out: Path = OUT) -> Path:
    from playwright.sync_api import sync_playwright

    with LocalStack(api_port=free_port(), emulator_settings=QUICK_EMULATOR) as stack, sync_playwright() as playwright:
        executable = CHROMIUM if Path(CHROMIUM).exists() else None
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 1100})
        page.goto(stack.api_url + "/")
        page.fill("#key-input", DEV_API_KEY)
        page.press("#key-input", "Enter")
        for number, prompt in enumerate(PROMPTS):
            page.fill("#prompt", prompt)
            page.select_option("#size", "512*512")
            page.fill("#seed", str(7 + number))
            page.click("#generate")
            deadline = time.monotonic() + 30
            while not page.evaluate("() => document.getElementById('result-image').naturalWidth > 0"):
                if time.monotonic() > deadline:
                    raise RuntimeError(page.inner_text("body"))
                time.sleep(0.1)
            page.wait_for_selector("#generate:enabled")
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    return out


if __name__ == "__main__":
    print(f"wrote {take()}")
    sys.exit(0)
