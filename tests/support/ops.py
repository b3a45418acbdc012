"""Shared helpers for the deployment checks: repository paths, the external tools
(hadolint, promtool, kubernetes-validate, kustomize) and rendered kustomizations.

A missing tool skips the tests that need it, with the reason; .ci/ops-checks installs
every tool and sets ESCALATOR_OPS_REQUIRE_TOOLS=1, which turns such a skip into a
failure so that CI can never pass by skipping.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/production", "monitoring")


def find_tool(name: str) -> str | None:
    """The tool in this interpreter's venv, or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def require_tool(name: str, why: str) -> str:
    """The tool's path, or skip (fail under ESCALATOR_OPS_REQUIRE_TOOLS=1)."""
    path = find_tool(name)
    if path is None:
        message = f"{name} is not installed ({why}); .ci/ops-checks installs it"
        if os.environ.get("ESCALATOR_OPS_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def kustomize_command() -> list[str]:
    """How to render a kustomization here: kubectl kustomize, or a kustomize binary."""
    kubectl = find_tool("kubectl")
    if kubectl is not None:
        return [kubectl, "kustomize"]
    return [require_tool("kustomize", "renders k8s/ kustomizations"), "build"]


def run(command: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a tool; its output is kept for the assertion message."""
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


_rendered: dict[str, list[dict[str, Any]]] = {}


def render(kustomization: str) -> list[dict[str, Any]]:
    """The documents kustomize renders for k8s/<kustomization> (cached per session)."""
    if kustomization not in _rendered:
        result = run([*kustomize_command(), str(K8S / kustomization)])
        assert result.returncode == 0, f"kustomize {kustomization}:\n{result.stderr}"
        _rendered[kustomization] = [d for d in yaml.safe_load_all(result.stdout) if d]
    return _rendered[kustomization]


def only(documents: list[dict[str, Any]], kind: str, name: str | None = None
         ) -> dict[str, Any]:
    """The one document of that kind (and name; a generated name may carry kustomize's
    10-character hash suffix)."""
    def named(document: dict[str, Any]) -> bool:
        actual = document["metadata"]["name"]
        return name is None or actual == name or re.fullmatch(
            re.escape(name) + r"-[a-z0-9]{10}", actual) is not None

    found = [d for d in documents if d["kind"] == kind and named(d)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]
