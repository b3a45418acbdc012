"""Configuration: one table of environment variables, validated at start, documented."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from escalator.config import SETTINGS, Config, ConfigError
from escalator.ruleset.catalogue import FACTS

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
# Facts may be documented in the README or in a page of docs/ (the README links them).
DOCS = "\n".join(page.read_text(encoding="utf-8")
                 for page in sorted((Path(__file__).parent.parent / "docs").rglob("*.md")))


def test_defaults_without_environment() -> None:
    config = Config.from_env({})
    assert config.redis_url is None
    assert config.state_ttl_seconds == 86400
    assert config.fail_mode == "stateless"
    assert (config.rules_path / "ruleset.yaml").is_file()


def test_values_are_parsed_and_typed() -> None:
    config = Config.from_env({
        "ESCALATOR_REDIS_URL": "redis://127.0.0.1:6379/3",
        "ESCALATOR_STATE_TTL_SECONDS": "60",
        "ESCALATOR_API_KEYS": "a, b,,c",
        "ESCALATOR_RULES_DIR": "/tmp/rules",
    })
    assert config.redis_url == "redis://127.0.0.1:6379/3"
    assert config.state_ttl_seconds == 60
    assert config.api_keys == ("a", "b", "c")
    assert config.rules_path == Path("/tmp/rules")


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"ESCALATOR_STATE_TTL_SECONDS": "-5",
                         "ESCALATOR_FAIL_MODE": "shrug",
                         "ESCALATOR_MAX_BODY_BYTES": "lots"})
    message = str(caught.value)
    for name in ("ESCALATOR_STATE_TTL_SECONDS", "ESCALATOR_FAIL_MODE",
                 "ESCALATOR_MAX_BODY_BYTES"):
        assert name in message


def test_the_settings_table_matches_the_config() -> None:
    assert {f.name for f in fields(Config)} == {s.attr for s in SETTINGS}


def test_each_default_is_written_once_and_the_readme_shows_it() -> None:
    assert Config.from_env({}) == Config()
    for setting in SETTINGS:
        default = setting.default
        shown = "unset" if default is None else "none" if default == () else str(default)
        assert f"| `{setting.env}` | `{shown}` |" in README, setting.env


def test_the_readme_documents_every_setting_and_fact() -> None:
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in README]
    missing += [name for name in FACTS if f"`{name}`" not in README + DOCS]
    assert missing == []


@pytest.mark.parametrize(("raw", "meant"), [("prod", "production"),
                                            ("Production", "production"),
                                            ("dev", "development")])
def test_an_unknown_environment_is_reported_like_any_bad_value(raw: str, meant: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"ESCALATOR_ENV": raw, "ESCALATOR_REDIS_CLUSTER": "perhaps"})
    lines = str(caught.value).splitlines()
    assert lines[1:] == [
        "  ESCALATOR_REDIS_CLUSTER='perhaps': expected true or false",
        f"  ESCALATOR_ENV={raw!r}: expected one of development, production, test "
        f"(did you mean {meant!r}?)"]


def test_a_mistyped_choice_gets_no_wild_guess() -> None:
    with pytest.raises(ConfigError, match=r"ESCALATOR_FAIL_MODE='zzz': expected one of "
                                          r"stateless, error$"):
        Config.from_env({"ESCALATOR_FAIL_MODE": "zzz"})


ENV_WITHOUT_ESCALATOR = {k: v for k, v in os.environ.items()
                         if not k.startswith(("ESCALATOR_", "PROMETHEUS_"))}


@pytest.mark.parametrize("command", [["rules", "check"], ["rules", "test"],
                                     ["evaluate", "-"], ["serve", "--port", "1"]])
def test_every_command_reports_a_bad_environment_in_one_line(command: list[str],
                                                             tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "escalator", *command], cwd=tmp_path, check=False,
        input='{"turns": [{"message": {"text": "hello"}}]}', capture_output=True, text=True,
        timeout=60, env={**ENV_WITHOUT_ESCALATOR, "ESCALATOR_ENV": "prod"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert ("  ESCALATOR_ENV='prod': expected one of development, production, test "
            "(did you mean 'production'?)") in result.stderr.splitlines()
