"""The proxy in front of gunicorn: k8s/base/nginx.conf is the file the pods run, nginx
accepts it, and it agrees with the Deployment and the service's own limits.
(tests/serving/test_slow_clients.py runs nginx on it against slow clients.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from support.ops import K8S, ROOT, only, render, require_tool, run
from test_k8s import container, generator, settings

from escalator.config import Config
from escalator.serving import gunicorn_config

NGINX_CONF = K8S / "base" / "nginx.conf"
API_PAGE = (ROOT / "docs" / "api.md").read_text()
TEXT = NGINX_CONF.read_text()
OVERLAYS = ("base", "overlays/dev", "overlays/production")


def directive(name: str, text: str = TEXT) -> list[str]:
    """The arguments of every `name ...;` directive in the file (comments ignored)."""
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return [m.strip() for m in re.findall(rf"^\s*{name}\s+([^;{{]*);", code, re.M)]


def size_in_bytes(value: str) -> int:
    """nginx's size notation (64k, 1m, 512) in bytes."""
    number, unit = re.fullmatch(r"(\d+)([kKmM]?)", value).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit.lower()]


def seconds(value: str) -> float:
    """nginx's time notation (5s, 1m, 35) in seconds."""
    number, unit = re.fullmatch(r"(\d+)(ms|s|m)?", value).groups()  # type: ignore[union-attr]
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[unit]


def pod(documents: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = only(documents, "Deployment", "escalator")["spec"]["template"]["spec"]
    return spec


def test_nginx_accepts_the_file_as_it_is(tmp_path: Path) -> None:
    nginx = require_tool("nginx", "checks k8s/base/nginx.conf")
    # The pod's way of running it: everything nginx writes under the prefix.
    result = run([nginx, "-t", "-p", f"{tmp_path}/", "-c", str(NGINX_CONF), "-e", "stderr"])
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_pods_run_this_very_file(name: str) -> None:
    documents = render(name)
    config_map = only(documents, "ConfigMap", "escalator-proxy")
    assert config_map["data"] == {"nginx.conf": TEXT}
    assert generator("escalator-proxy")["files"] == ["nginx.conf"]
    proxy = container(documents, "proxy")
    volumes = {v["name"]: v for v in pod(documents)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in proxy["volumeMounts"]}
    command = proxy["command"]
    conf = Path(command[command.index("-c") + 1])
    prefix = command[command.index("-p") + 1].rstrip("/")
    assert conf.name == "nginx.conf"
    assert volumes[mounts[str(conf.parent)]]["configMap"]["name"] == \
        config_map["metadata"]["name"]
    # Under a read-only root, the prefix (pid, temporary files) must be an emptyDir.
    assert "emptyDir" in volumes[mounts[prefix]]
    assert directive("daemon") == ["off"]  # the container's main process


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_ports_join_up(name: str) -> None:
    documents = render(name)
    proxy, service = container(documents, "proxy"), container(documents)
    http = next(p["containerPort"] for p in proxy["ports"] if p["name"] == "http")
    assert directive("listen") == [str(http)]
    args = service["args"]
    gunicorn = f"{args[args.index('--host') + 1]}:{args[args.index('--port') + 1]}"
    assert gunicorn.startswith("127.0.0.1:")  # loopback: nothing reaches it but nginx
    assert directive("server") == [gunicorn]
    assert directive("proxy_pass") == ["http://escalator"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_body_limit_is_the_services_in_every_overlay(name: str) -> None:
    # The keys come from a Secret in the pod; stand in for them (production requires one).
    environment = {**settings(render(name)), "ESCALATOR_API_KEYS": "from-secret"}
    limit = Config.from_env(environment).max_body_bytes
    assert size_in_bytes(directive("client_max_body_size")[0]) == limit
    # Bodies up to the limit are buffered in memory, not in a file per request.
    assert size_in_bytes(directive("client_body_buffer_size")[0]) >= limit
    assert f"larger than {limit} bytes" in TEXT


def test_requests_are_buffered_and_time_bounded() -> None:
    assert directive("proxy_request_buffering") == ["on"]
    assert directive("proxy_buffering") == ["on"]
    assert seconds(directive("client_header_timeout")[0]) <= 10
    assert seconds(directive("client_body_timeout")[0]) <= 10
    # The worker is restarted (gunicorn's timeout) before nginx gives up on it, and a
    # request is never sent twice on nginx's own initiative.
    assert seconds(directive("proxy_read_timeout")[0]) > gunicorn_config.timeout
    assert directive("proxy_next_upstream") == ["off"]
    # A sync worker closes every connection: an upstream keepalive pool would be dead.
    assert directive("keepalive") == []


def test_no_log_line_holds_a_path_or_an_address() -> None:
    log_formats = " ".join(directive("log_format"))
    for variable in ("$request ", "$request_uri", "$uri", "$args", "$query_string",
                     "$remote_addr", "$http_"):
        assert variable not in log_formats + " ", variable
    # nginx's error lines quote the request line (and so the conversation id).
    assert directive("error_log") == ["stderr crit"]
    assert all(line.split()[-1].startswith("if=") or line == "off"
               for line in directive("access_log"))


def test_the_proxys_own_errors_are_the_api_envelope() -> None:
    pages = {name: (int(status), body) for name, status, body in re.findall(
        r"location (@\w+) \{\s*return (\d{3}) '([^']*)';", TEXT)}
    mapped = {int(code): page for codes, page in
              (re.match(r"([\d ]+) = (@\w+)", d).groups()  # type: ignore[union-attr]
               for d in directive("error_page")) for code in codes.split()}
    assert {413, 502, 504} <= set(mapped)
    for status, page in mapped.items():
        answered, body = pages[page]
        error = json.loads(body.replace("\\n", "\n"))["error"]
        assert set(error) == {"code", "message"} and error["message"]
        # Each code is one the API page's error table documents, with this status.
        assert re.search(rf"\| {answered} \| `{error['code']}` \|", API_PAGE), error["code"]
        assert answered == status
