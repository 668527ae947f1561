"""/docs, /redoc and the page at / in headless Chromium: they render, and no request leaves
the server (no CDN, no fonts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testing.app import ARCH, Running
from testing.browser import foreign, requested_urls
from testing.paths import SAMPLES
from testing.waiting import poll


def _texts(driver: Any, css: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def test_swagger_ui_renders_operations_offline(browser: Any, app: Running, shots: Path) -> None:
    requested_urls(browser)  # forget earlier pages
    browser.get(f"{app.url}/docs")
    paths = poll(lambda: _texts(browser, ".opblock-summary-path"), 60, "Swagger UI operations")
    assert "/classify" in paths and "/v2/models/{name}/infer" in paths
    assert "/v1/models" in paths
    browser.save_screenshot(str(shots / "docs.png"))
    urls = requested_urls(browser)
    assert any(u.endswith("/openapi.json") for u in urls)
    assert foreign(urls, app.url) == [], "the docs fetched something from outside"


def test_redoc_renders_offline(browser: Any, app: Running) -> None:
    requested_urls(browser)
    browser.get(f"{app.url}/redoc")
    titles = poll(lambda: [t for t in _texts(browser, "h2") if t], 60, "ReDoc operations")
    assert any("Classify" in t for t in titles), titles
    assert foreign(requested_urls(browser), app.url) == []


def test_page_classifies_an_uploaded_photo(browser: Any, app: Running, shots: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    requested_urls(browser)
    browser.get(f"{app.url}/")
    poll(lambda: _texts(browser, "#model option"), 30, "the model list")
    assert not browser.find_element(By.ID, "banner").is_displayed()  # weights from a file
    topk = browser.find_element(By.ID, "topk")
    topk.clear()
    topk.send_keys("3")
    browser.find_element(By.ID, "files").send_keys(str(SAMPLES / "coffee.jpg"))
    browser.find_element(By.ID, "go").click()
    labels = poll(lambda: _texts(browser, ".result .label"), 60, "rendered predictions")

    want = app.client.post(
        f"/classify?model={ARCH}&top_k=3",
        content=(SAMPLES / "coffee.jpg").read_bytes(),
        headers={"Content-Type": "image/jpeg"},
    ).json()["results"][0]["predictions"]
    assert labels == [f"{p['label']} ({p['class_index']})" for p in want]
    probs = _texts(browser, ".result .prob")
    assert probs == [f"{100 * p['probability']:.2f}%" for p in want]
    assert "inference" in _texts(browser, ".result .timing")[0]
    browser.save_screenshot(str(shots / "page.png"))

    Select(browser.find_element(By.ID, "model")).select_by_value("plain")
    banner = browser.find_element(By.ID, "banner")
    assert banner.is_displayed() and "RANDOM weights" in banner.text
    assert foreign(requested_urls(browser), app.url) == []


def test_page_sends_the_api_key(browser: Any, serve_with_key: Running) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{serve_with_key.url}/")
    error = poll(lambda: browser.find_element(By.ID, "error").text, 30, "the 401 message")
    assert "401" in error
    browser.find_element(By.ID, "apikey").send_keys("s3cret")
    browser.find_element(By.ID, "reload").click()
    poll(lambda: _texts(browser, "#model option"), 30, "the model list with the key")
    browser.find_element(By.ID, "files").send_keys(str(SAMPLES / "coffee.jpg"))
    browser.find_element(By.ID, "go").click()
    assert poll(lambda: _texts(browser, ".result .label"), 60, "predictions with the key")
