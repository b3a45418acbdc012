"""The Dockerfile: lint clean, and the image starts the service the way the tests do."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml
from support.ops import K8S, ROOT, require_tool, run

from escalator.cli.serve import serve
from escalator.config import SETTINGS

DOCKERFILE = ROOT / "Dockerfile"


def instructions(stage: str | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments
    dropped; only the named stage's when given."""
    text = re.sub(r"\\\n", " ", "\n".join(
        line for line in DOCKERFILE.read_text().splitlines()
        if not line.lstrip().startswith("#")))
    result: list[tuple[str, str]] = []
    current: str | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        keyword, _, arguments = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            current = arguments.split(" AS ")[-1].strip() if " AS " in arguments else None
        if stage is None or current == stage:
            result.append((keyword.upper(), arguments.strip()))
    return result


def runtime_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in instructions("runtime"):
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def test_hadolint_finds_nothing() -> None:
    hadolint = require_tool("hadolint", "lints the Dockerfile")
    result = run([hadolint, str(DOCKERFILE)])
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_the_image_runs_escalator_serve_on_all_interfaces() -> None:
    cmd = json.loads(dict(instructions("runtime"))["CMD"])  # exec form: a JSON list
    assert cmd == ["escalator", "serve", "--host", "0.0.0.0", "--port", "8080"]
    options = {opt for param in serve.params for opt in param.opts}
    assert {"--host", "--port"} <= options  # the same command `escalator serve` tests run
    assert dict(instructions("runtime"))["EXPOSE"] == "8080"


def test_the_image_sets_the_environment_the_service_needs() -> None:
    env = runtime_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/metrics"
    assert env["ESCALATOR_RULES_DIR"] == "/app/rules"
    known = {setting.env for setting in SETTINGS}
    assert {name for name in env if name.startswith("ESCALATOR_")} <= known
    # The metrics folder exists and belongs to the service user before gunicorn starts.
    runs = " ".join(arguments for keyword, arguments in instructions("runtime")
                    if keyword == "RUN")
    assert re.search(r"install -d -o escalator .*/tmp/metrics", runs)


def test_the_image_runs_as_the_non_root_user_the_deployment_expects() -> None:
    user = dict(instructions("runtime"))["USER"]
    uid = int(user.split(":")[0])
    assert uid >= 1000
    deployment = yaml.safe_load((K8S / "base" / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid
    assert "--shell /usr/sbin/nologin" in DOCKERFILE.read_text()


def test_the_healthcheck_needs_no_curl() -> None:
    healthcheck = dict(instructions("runtime"))["HEALTHCHECK"]
    assert "curl" not in healthcheck and "wget" not in healthcheck
    assert "urllib" in healthcheck and "/healthz" in healthcheck


def test_dockerignore_lets_through_everything_the_build_copies() -> None:
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    sources = [arguments.split()[:-1] for keyword, arguments in instructions()
               if keyword == "COPY" and not arguments.startswith("--from")]
    assert sources
    for paths in sources:
        for path in paths:
            top = Path(path).parts[0]
            assert top in allowed, f"COPY {path}: {top} is excluded by .dockerignore"
            assert (ROOT / top).exists()
