"""The service needs no platform package; each adapter's platform is in its own extra."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_MODULES = ("rasa_sdk", "microsoft_agents", "botocore", "sanic", "google")


def test_the_service_imports_no_platform_package() -> None:
    probe = ("import sys, escalator.app, escalator.cli, escalator.integrations.client; "
             "escalator.app.create_app; "
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({PLATFORM_MODULES!r})))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_each_platform_has_its_extra() -> None:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    extras = setup["options.extras_require"]
    assert "rasa-sdk" in extras["rasa"] and "botocore" in extras["lex"]
    assert "microsoft-agents-hosting-core" in extras["agents"]
    assert "microsoft-agents-activity" in extras["agents"]
    assert "google-cloud-dialogflow-cx" in extras["dialogflow"]
    assert "escalator.integrations" in setup["options"]["packages"]
    for platform in ("rasa", "lex", "agents", "dialogflow"):
        assert platform not in setup["options"]["install_requires"]
