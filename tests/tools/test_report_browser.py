"""The HTML report in a real browser: Debian's chromium, driven by Selenium through
chromedriver, opens the page from disk with the network off and draws every chart.

The log is the scale benchmark's generator at a small size (every section has data:
feedback, thresholds, missed escalations, a shadow rule set). A screenshot of the whole
page goes to tests/studio/screenshots/report.png (or ESCALATOR_STUDIO_SCREENSHOTS) for a
reviewer. Without chromium, chromedriver or selenium the test is skipped, and fails
instead under ESCALATOR_STUDIO_REQUIRE_BROWSER=1 (as in CI).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.browser import SHOTS

ROOT = Path(__file__).resolve().parents[2]


def test_the_html_report_renders_in_chromium(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    log = tmp_path / "decisions.jsonl"
    subprocess.run([sys.executable, "-m", "bench.perf.report_scale", "generate",
                    "--decisions", "4000", "--feedback", "0.2", "--out", str(log)],
                   check=True, cwd=ROOT)
    page = tmp_path / "report.html"
    for fmt, out in (("html", page), ("json", tmp_path / "report.json")):
        subprocess.run([sys.executable, "-m", "escalator", "report", str(log), "--format",
                        fmt, "--out", str(out)], check=True, capture_output=True)
    expected = json.loads((tmp_path / "report.json").read_text())

    browser.get(page.as_uri())
    assert browser.title == "Escalation report · escalator"
    rate = browser.find_element(By.ID, "handoff-rate").text
    assert rate == f"{expected['escalation']['rate'] * 100:.1f}%"
    assert browser.find_element(By.ID, "shadow-disagreements").text == \
        str(expected["shadow"]["disagreements"])
    # Every chart is drawn with a size, and the precision chart has its whiskers.
    sizes = browser.execute_script(
        "return [...document.querySelectorAll('svg.chart')].map("
        "s => [s.getBoundingClientRect().width, s.getBoundingClientRect().height])")
    assert len(sizes) >= 20
    assert all(w > 200 and h > 50 for w, h in sizes), sizes
    judged = [x for x in expected["precision"] if x["precision"] is not None]
    whiskers = browser.find_elements(By.CSS_SELECTOR, "#precision svg path")
    assert len(whiskers) == len(judged) >= 3
    markers = browser.find_elements(By.XPATH, "//*[local-name()='text'][starts-with(., "
                                              "'threshold ')]")
    assert len(markers) >= len(expected["thresholds"]) - 2  # all but facts with no data
    # Nothing was fetched: the page is one file.
    assert browser.execute_script(
        "return performance.getEntriesByType('resource').length") == 0
    rows = browser.find_elements(By.CSS_SELECTOR, "#precision-table tbody tr")
    assert len(rows) == len(expected["precision"])

    SHOTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1366, max(900, min(int(height) + 40, 16000)))
    browser.save_screenshot(str(SHOTS / "report.png"))
