"""The studio in a real browser: Debian's chromium, driven by Selenium through chromedriver.

One policy owner's session, end to end, on a copy of the default rules and the small
synthetic corpus beside this test: read a rule's sentence, change its threshold in the
form, see the check refuse an impossible value, fix it, replay, open a changed
conversation, save, and find the file changed and `escalator rules check` passing.

Screenshots of every page go to tests/studio/screenshots/ (or ESCALATOR_STUDIO_SCREENSHOTS)
for a reviewer. Without chromium, chromedriver or selenium the test is skipped, and fails
instead under ESCALATOR_STUDIO_REQUIRE_BROWSER=1 (as in CI).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import SHOTS
from support.rulesets import copy_rules, default_version
from support.servers import stop
from support.studio import CORPUS

from escalator.config import default_rules_dir
from escalator.ruleset.previous import next_version

WAIT_SECONDS = 30.0

@pytest.fixture
def studio_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`escalator studio` on a copy of the default rules, as an owner starts it."""
    rules = copy_rules(tmp_path / "rules", with_tests=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "escalator", "studio", str(rules), "--corpus", str(CORPUS),
         "--no-browser"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the first line names the address
        found = re.search(r"http://127\.0\.0\.1:\d+/studio/", line)
        assert found, f"no address in {line!r}; stderr: {process.stderr and process.stderr.read()}"
        yield found.group(0), rules
    finally:
        stop(process)


def _until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # the page may be between two loads
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    raise AssertionError(f"waited {WAIT_SECONDS} s for {what}; last: {last!r}")


def _shot(driver: Any, name: str) -> None:
    """A screenshot of the whole page (the window grown to the page's height)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1366, max(900, min(int(height) + 40, 8000)))
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    driver.set_window_size(1366, 900)


def test_an_owner_changes_a_threshold_replays_and_saves(browser: Any,
                                                        studio_server: tuple[str, Path]
                                                        ) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url, rules = studio_server
    driver = browser
    driver.get(url)
    # The replay of the corpus with the saved rules starts with the studio: its counts show.
    def counted() -> bool:
        driver.get(url)
        return "Matched" in driver.find_element(By.ID, "rule-frustration-spike").text

    _until(counted, "the rule counts of the first replay")
    spike = driver.find_element(By.ID, "rule-frustration-spike")
    assert ("Route to a person, queue support, urgency high, when the fitted frustration of "
            "this message is at least 0.85.") in spike.text
    assert "floor" in driver.find_element(By.ID, "rule-explicit-human-request").text
    _shot(driver, "01-rules")

    # The form: an impossible threshold is refused on its row as it is typed.
    spike.find_element(By.LINK_TEXT, "Edit").click()
    assert Select(driver.find_element(By.ID, "fact-0")).first_selected_option.text == \
        "frustration.fitted"
    value = driver.find_element(By.ID, "value-0")
    value.clear()
    value.send_keys("4")
    problem = _until(lambda: driver.find_element(By.ID, "problem-0").text, "a check problem")
    assert "can never be true" in problem and "between 0 and 1" in problem
    _shot(driver, "02-rule-form-problem")
    value.clear()
    value.send_keys("0.8")
    _until(lambda: driver.find_element(By.ID, "check-ok"), "the check to pass")
    assert "at least 0.8." in driver.find_element(By.ID, "sentence").text
    _shot(driver, "03-rule-form-fixed")
    driver.find_element(By.CSS_SELECTOR, "button[value=apply]").click()
    _until(lambda: "at least 0.8." in driver.find_element(By.ID, "rule-frustration-spike").text,
           "the edited sentence on the rules page")
    assert "unsaved changes" in driver.find_element(By.ID, "draft-status").text
    assert "gte: 0.85" in (rules / "frustration.yaml").read_text()  # nothing written yet

    # The YAML editor shows the same draft, highlighted.
    driver.get(url + "files/frustration.yaml")
    _until(lambda: driver.find_element(By.CSS_SELECTOR, ".CodeMirror"), "the editor")
    assert "gte: 0.8}" in driver.execute_script(
        "return document.querySelector('.CodeMirror').CodeMirror.getValue()")
    _shot(driver, "04-yaml-editor")

    # Replay: the saved and the edited rules over the corpus.
    driver.get(url + "replay")
    _shot(driver, "05-replay-start")
    driver.find_element(By.CSS_SELECTOR, "form button.primary").click()
    count = _until(lambda: driver.find_element(By.ID, "changed-count").text,
                   "the replay's result")
    _shot(driver, "06-replay")
    expected = _replay_json(rules, driver, url)
    assert int(count) == expected["decisions_changed"] >= 1
    rate = driver.find_element(By.ID, "rate-edited").text
    assert rate == f"{expected['escalation_rate']['rules'] * 100:.1f}%"

    changed = driver.find_elements(By.CSS_SELECTOR, "table.changes a")
    first = changed[0].text
    changed[0].click()
    _until(lambda: first in driver.find_element(By.TAG_NAME, "h1").text, "the conversation")
    assert "frustration-spike" in driver.find_element(By.CSS_SELECTOR, "table.results").text
    _shot(driver, "07-conversation")

    driver.get(url + "audit")
    _until(lambda: driver.find_elements(By.CSS_SELECTOR, "section.audit"), "the audit")
    assert "Not enough decisions to compare" in driver.page_source  # 12 conversations
    driver.get(url + "audit?min_count=2")
    _shot(driver, "08-audit")

    driver.get(url + "try")
    driver.find_element(By.ID, "text-1").send_keys("This is the worst service ever, I am furious")
    driver.find_element(By.CSS_SELECTOR, "#try-form button.primary").click()
    _until(lambda: driver.find_element(By.CSS_SELECTOR, "table.results"), "the decisions")
    _shot(driver, "09-try")

    driver.get(url + "tests")
    assert "failed" in driver.find_element(By.ID, "test-summary").text
    _shot(driver, "10-tests")

    # Save, with the version the page offers.
    driver.get(url + "save")
    version = driver.find_element(By.ID, "version")
    old = default_version()
    new = next_version(old)
    assert version.get_attribute("value") == new
    _shot(driver, "11-save")
    driver.find_element(By.CSS_SELECTOR, "button[value=save]").click()
    _until(lambda: driver.find_element(By.ID, "saved-message"), "the save")
    assert "{fact: frustration.fitted, gte: 0.8}" in (rules / "frustration.yaml").read_text()
    assert f'version: "{new}"' in (rules / "ruleset.yaml").read_text()
    check = subprocess.run([sys.executable, "-m", "escalator", "rules", "check", str(rules),
                            "--against", str(default_rules_dir())],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert f"version {old} -> {new}" in check.stdout
    leftovers = [p.name for p in rules.iterdir() if "studio-tmp" in p.name]
    assert leftovers == []


def _replay_json(rules: Path, driver: Any, url: str) -> Any:
    """`escalator replay` of the draft the page replayed, against the saved rules: the
    draft is written to a scratch copy from the studio's own editor page."""
    from selenium.webdriver.common.by import By

    scratch = rules.parent / "draft"
    shutil.copytree(rules, scratch)
    driver.get(url + "files/frustration.yaml")
    text = driver.execute_script(
        "return document.querySelector('.CodeMirror').CodeMirror.getValue()")
    (scratch / "frustration.yaml").write_text(text)
    driver.back()
    _until(lambda: driver.find_element(By.ID, "changed-count"), "the replay page again")
    result = subprocess.run([sys.executable, "-m", "escalator", "replay", str(CORPUS),
                             "--rules", str(scratch), "--against", str(rules), "--json"],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)
