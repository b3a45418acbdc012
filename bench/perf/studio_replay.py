"""How long the studio's replay view of a corpus takes to load, and the replay itself.

    python -m bench.perf.studio_replay ../shared/data

Converts the twcc traffic (`escalator corpus convert`) into a corpus in a temporary folder, starts
`escalator studio` on a copy of the default rules with the frustration-spike threshold
lowered in the draft (so both rule sets are replayed and compared), runs the replay from
the page as an owner would, then loads the replay view: through HTTP (the server's time,
median and slowest of 20), and in headless chromium when it is installed (navigation to
the load event, median of 5). Then the studio's home page, read again and again while a
replay of ten times the corpus runs, against the same page with no replay running (a
replay runs in a process of its own, so it should not slow the pages).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common.servers import ROOT


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the folder of the public data sets")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    try:
        corpus = work / "twcc.jsonl"
        subprocess.run([sys.executable, "-m", "escalator", "corpus", "convert", "--from", "twcc",
                        str(args.data / "traffic" / "twcc_dev.json"), "-o", str(corpus)],
                       check=True)
        big = work / "twcc-x10.jsonl"
        big.write_text(corpus.read_text(encoding="utf-8") * 10, encoding="utf-8")
        rules = work / "rules"
        shutil.copytree(ROOT / "rules", rules)
        server = subprocess.Popen([sys.executable, "-m", "escalator", "studio", str(rules),
                                   "--corpus", str(corpus), "--corpus", str(big),
                                   "--no-browser"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            found = re.search(r"http://\S+/studio/", server.stdout.readline())
            assert found
            measure(found.group(0), rules)
        finally:
            server.terminate()
            server.wait(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def measure(url: str, rules: Path) -> None:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(url).read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    text = (rules / "frustration.yaml").read_text().replace(
        "frustration.score, gte: 0.85", "frustration.score, gte: 0.75")

    def post(path: str, data: dict[str, str]) -> str:
        body = urllib.parse.urlencode({"csrf_token": csrf.group(1), **data}).encode()
        with opener.open(url + path, body) as response:
            return str(response.geturl())

    post("files/frustration.yaml", {"text": text})
    started = time.perf_counter()
    job_url = post("replay", {"corpus": "0"})
    progress = wait_for_replay(opener, url, job_url)
    replay_seconds = time.perf_counter() - started
    times, size = [], 0
    for _ in range(20):
        t0 = time.perf_counter()
        size = len(opener.open(job_url).read())
        times.append(time.perf_counter() - t0)
    print(f"corpus: {progress['total']} conversations; replay with both rule sets: "
          f"{replay_seconds:.2f} s (status {progress['status']})")
    print(f"replay view over HTTP: median {statistics.median(times) * 1000:.0f} ms, "
          f"slowest {max(times) * 1000:.0f} ms of 20 ({size / 1024:.0f} KiB)")
    browser(job_url, jar)
    pages_while_replaying(opener, url, post)


def wait_for_replay(opener: urllib.request.OpenerDirector, url: str, job_url: str,
                    while_waiting: Callable[[], None] = lambda: time.sleep(0.05)
                    ) -> dict[str, Any]:
    """Poll a replay's progress until it is finished; its last progress."""
    job_id = job_url.rstrip("/").rsplit("/", 1)[1]
    while True:
        progress: dict[str, Any] = json.loads(opener.open(f"{url}api/replay/{job_id}").read())
        if progress["status"] not in ("waiting", "running"):
            return progress
        while_waiting()


def pages_while_replaying(opener: urllib.request.OpenerDirector, url: str,
                          post: Callable[[str, dict[str, str]], str]) -> None:
    def home() -> float:
        t0 = time.perf_counter()
        opener.open(url).read()
        return time.perf_counter() - t0

    busy: list[float] = []
    started = time.perf_counter()
    progress = wait_for_replay(opener, url, post("replay", {"corpus": "1"}),
                               lambda: busy.append(home()))
    seconds = time.perf_counter() - started
    idle = [home() for _ in range(max(20, len(busy)))]
    print(f"home page while {progress['total']} conversations were replayed ({seconds:.1f} s): "
          f"median {statistics.median(busy) * 1000:.0f} ms, slowest {max(busy) * 1000:.0f} ms "
          f"of {len(busy)}; with no replay: median {statistics.median(idle) * 1000:.0f} ms, "
          f"slowest {max(idle) * 1000:.0f} ms of {len(idle)}")


def browser(job_url: str, jar: http.cookiejar.CookieJar) -> None:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        print("in chromium: skipped (selenium is not installed)")
        return
    if not Path("/usr/bin/chromium").exists():
        print("in chromium: skipped (/usr/bin/chromium is not installed)")
        return
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="studio-bench-profile-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1366,900",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(job_url.split("/studio/")[0] + "/studio/static/studio.css")
        for cookie in jar:
            driver.add_cookie({"name": cookie.name, "value": cookie.value or "",
                               "path": cookie.path})
        loads = []
        for _ in range(5):
            driver.get(job_url)
            loads.append(driver.execute_script(
                "var t = performance.getEntriesByType('navigation')[0];"
                "return t.loadEventEnd - t.startTime;"))
        print(f"replay view in chromium (navigation to load event): median "
              f"{statistics.median(loads):.0f} ms, slowest {max(loads):.0f} ms of 5")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
