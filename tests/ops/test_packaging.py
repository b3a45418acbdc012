"""The distribution: the licence setup.cfg declares is in the repository, word for word,
and every built package (sdist and wheel) carries it; every subpackage of the code is
declared, so a wheel (the Docker image) holds all of it."""

from __future__ import annotations

import configparser
import hashlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt (11,358 bytes), the text
# Debian ships as /usr/share/common-licenses/Apache-2.0.
APACHE_2_0_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def test_the_licence_is_the_official_apache_2_0_text() -> None:
    assert "license = Apache-2.0" in (ROOT / "setup.cfg").read_text().splitlines()
    assert hashlib.sha256((ROOT / "LICENSE").read_bytes()).hexdigest() == APACHE_2_0_SHA256


def test_the_package_metadata_names_and_ships_the_licence(tmp_path: Path) -> None:
    # setuptools' egg_info is what both the sdist and the wheel are built from: its
    # PKG-INFO becomes their metadata, SOURCES.txt the sdist's file list.
    result = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "egg_info",
         "--egg-base", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
        timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    info = tmp_path / "escalator.egg-info"
    assert "License-File: LICENSE" in (info / "PKG-INFO").read_text().splitlines()
    assert "LICENSE" in (info / "SOURCES.txt").read_text().splitlines()


def test_every_package_of_the_code_is_declared() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    declared = set(config["options"]["packages"].split())
    found = {".".join(init.parent.relative_to(ROOT).parts)
             for init in (ROOT / "escalator").rglob("__init__.py")}
    assert found <= declared, f"not in setup.cfg's packages: {sorted(found - declared)}"
