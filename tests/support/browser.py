"""Debian's chromium driven by Selenium for the browser tests, as a fixture.

Without chromium, chromedriver or selenium a browser test is skipped, and fails instead
under ESCALATOR_STUDIO_REQUIRE_BROWSER=1 (as in CI). Nothing downloads a browser.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Screenshots for a reviewer (ignored by git).
SHOTS = Path(os.environ.get("ESCALATOR_STUDIO_SCREENSHOTS",
                            Path(__file__).resolve().parents[1] / "studio" / "screenshots"))


def missing() -> str | None:
    """Why no browser test can run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def skip_or_fail(reason: str) -> None:
    if os.environ.get("ESCALATOR_STUDIO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test required but cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A headless chromium that downloads nothing and shares nothing with other runs."""
    reason = missing()
    if reason:
        skip_or_fail(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
                 "--window-size=1366,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
