"""The page's "where it looked" overlay in headless Chromium: drop a photo, the Grad-CAM
overlay appears under the predictions, the switch shows SA's map; neither is blank."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testing.app import Running
from testing.browser import foreign, requested_urls
from testing.paths import SAMPLES
from testing.waiting import poll

#: the overlay's natural size and the spread of its pixels (max - min over a sample), or
#: None while it has not loaded
PIXELS_JS = """
const img = document.querySelector('.result .explain img.overlay');
if (!img || !img.complete || !img.naturalWidth || img.dataset.method !== arguments[0]) return null;
const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const ctx = c.getContext('2d');
ctx.drawImage(img, 0, 0);
const data = ctx.getImageData(0, 0, c.width, c.height).data;
let lo = 255, hi = 0;
for (let i = 0; i < data.length; i += 4 * 97) {
  for (let k = 0; k < 3; k++) { lo = Math.min(lo, data[i + k]); hi = Math.max(hi, data[i + k]); }
}
return [img.naturalWidth, img.naturalHeight, hi - lo];
"""


def _overlay(browser: Any, method: str) -> list[int]:
    found: list[int] = poll(
        lambda: browser.execute_script(PIXELS_JS, method), 60, f"the {method} overlay"
    )
    return found


def test_page_shows_where_the_network_looked(browser: Any, app: Running, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    requested_urls(browser)
    browser.get(f"{app.url}/")
    poll(lambda: browser.find_elements(By.CSS_SELECTOR, "#model option"), 30, "the model list")
    browser.find_element(By.ID, "files").send_keys(str(SAMPLES / "coffee.jpg"))
    browser.find_element(By.ID, "go").click()

    width, height, spread = _overlay(browser, "gradcam")
    assert (width, height) == (224, 224)
    assert spread > 20, "the Grad-CAM overlay is blank"
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(shots / "explain.png"))

    browser.find_element(By.CSS_SELECTOR, ".result .explain button[data-method='sa']").click()
    width, height, spread = _overlay(browser, "sa")
    assert (width, height) == (224, 224) and spread > 20, "the SA overlay is blank"
    note = browser.find_element(By.CSS_SELECTOR, ".result .explain .note").text
    assert "SA layer" in note
    urls = requested_urls(browser)
    assert sum("/explain?" in u for u in urls) == 2
    assert foreign(urls, app.url) == []
