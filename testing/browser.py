"""Headless Chromium driven by selenium, recording every URL the page requests.

Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); selenium is
pointed at both so it never looks for (or downloads) a browser of its own.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from testing.ci import skip_or_fail
from testing.tools import require_tool

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--window-size=1100,900",
)


@contextmanager
def chromium() -> Iterator[Any]:
    """A fresh headless Chromium (its own profile directory) with performance logging."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip_or_fail("selenium is not installed")
    browser = require_tool("chromium")
    driver_path = require_tool("chromedriver")
    with tempfile.TemporaryDirectory(prefix="sanet-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        try:
            driver.set_page_load_timeout(60)
            yield driver
        finally:
            driver.quit()


def requested_urls(driver: Any) -> list[str]:
    """Every URL the browser sent a request for since the last call (from the perf log);
    requests the page's Content-Security-Policy blocked never left and are not listed."""
    urls, blocked = {}, set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
        elif message.get("method") == "Network.loadingFailed" and params.get("blockedReason"):
            blocked.add(params["requestId"])
    return [url for rid, url in urls.items() if rid not in blocked]


def foreign(urls: list[str], base: str) -> list[str]:
    """The network URLs not on ``base`` (data:, blob: and the browser's own chrome:// pages
    never leave the machine)."""
    network = ("http:", "https:", "ws:", "wss:", "ftp:")
    return [u for u in urls if u.startswith(network) and not u.startswith(base + "/")]
