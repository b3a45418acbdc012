"""The kustomize manifests: the rules copy, generated settings, security, probes, and
each rendered kustomization valid against the Kubernetes schemas."""

from __future__ import annotations

import base64
import re
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.ops import (
    K8S,
    KUSTOMIZATIONS,
    ROOT,
    kustomize_command,
    only,
    render,
    require_tool,
    run,
)

from escalator.config import SETTINGS, Config

RULES = ROOT / "rules"
RULES_COPY = K8S / "base" / "rules"


def rule_set_files(folder: Path) -> dict[str, bytes]:
    """What a rule set folder holds at run time: rule files and lexicons (not its tests)."""
    paths = [*folder.glob("*.yaml"), *(folder / "lexicons").glob("*.yaml")]
    return {str(path.relative_to(folder)): path.read_bytes() for path in paths}


def kustomization(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((K8S / name / "kustomization.yaml").read_text())
    return loaded


def generator(name: str, kustomization_name: str = "base") -> dict[str, Any]:
    for entry in kustomization(kustomization_name).get("configMapGenerator", []):
        if entry["name"] == name:
            found: dict[str, Any] = entry
            return found
    raise AssertionError(f"no configMapGenerator {name} in {kustomization_name}")


def container(documents: list[dict[str, Any]], name: str = "escalator") -> dict[str, Any]:
    spec = only(documents, "Deployment", "escalator")["spec"]["template"]["spec"]
    found: dict[str, Any] = next(c for c in spec["containers"] if c["name"] == name)
    return found


def settings(documents: list[dict[str, Any]]) -> dict[str, str]:
    found: dict[str, str] = only(documents, "ConfigMap", "escalator-settings")["data"]
    return found


def test_the_rules_copy_is_the_default_policy() -> None:
    # kustomize cannot read ../../rules, so k8s/base/rules is a copy: it must not drift.
    original, copy = rule_set_files(RULES), rule_set_files(RULES_COPY)
    assert sorted(copy) == sorted(original), "cp rules/*.yaml rules/lexicons k8s/base/rules"
    changed = [name for name in original if copy[name] != original[name]]
    assert not changed, f"k8s/base/rules differs from rules/ in {changed}: copy them again"


def test_the_generators_list_every_rule_and_lexicon_file() -> None:
    rules = {Path(f).name for f in generator("escalator-rules")["files"]}
    assert rules == {p.name for p in RULES_COPY.glob("*.yaml")}
    lexicons = {Path(f).name for f in generator("escalator-lexicons")["files"]}
    assert lexicons == {p.name for p in (RULES_COPY / "lexicons").glob("*.yaml")}


def test_the_projected_volume_puts_every_lexicon_under_lexicons() -> None:
    deployment = yaml.safe_load((K8S / "base" / "deployment.yaml").read_text())
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    sources = {s["configMap"]["name"]: s["configMap"]
               for s in volumes["rules"]["projected"]["sources"]}
    assert "items" not in sources["escalator-rules"]  # every rule file, at the top
    items = sources["escalator-lexicons"]["items"]
    lexicons = {p.name for p in (RULES_COPY / "lexicons").glob("*.yaml")}
    assert {i["key"] for i in items} == lexicons
    assert all(i["path"] == f"lexicons/{i['key']}" for i in items)


def test_the_settings_are_known_and_valid_in_every_overlay() -> None:
    known = {setting.env for setting in SETTINGS}
    for name in ("base", "overlays/dev", "overlays/production"):
        literals = dict(item.split("=", 1)
                        for item in generator("escalator-settings", name)["literals"])
        assert set(literals) <= known, f"{name}: unknown {set(literals) - known}"
    environment = {**dict(item.split("=", 1)
                          for item in generator("escalator-settings")["literals"])}
    # The keys come from the Secret escalator-api-keys (base deployment.yaml), not from
    # the settings: stand in for them, as the pod's environment would.
    secrets = {"ESCALATOR_API_KEYS": "from-secret", "ESCALATOR_ADMIN_KEYS": "from-secret"}
    for name in ("overlays/dev", "overlays/production"):
        merged = {**environment, **secrets, **dict(
            item.split("=", 1) for item in generator("escalator-settings", name)["literals"])}
        Config.from_env(merged)  # raises ConfigError on a bad value


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_kustomization_renders_valid_kubernetes_objects(name: str, tmp_path: Path) -> None:
    documents = render(name)
    assert documents
    validate = require_tool("kubernetes-validate", "checks manifests against the schemas")
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(documents))
    # --strict refuses unknown fields. The Prometheus Operator's kinds have no schema in
    # kubernetes-validate (a warning, not an error); test_monitoring.py checks them.
    result = run([validate, "--strict", "--quiet", str(rendered)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["base", "overlays/dev", "overlays/production"])
def test_the_pod_is_locked_down(name: str) -> None:
    documents = render(name)
    pod = only(documents, "Deployment", "escalator")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert sorted(c["name"] for c in pod["containers"]) == ["escalator", "proxy"]
    for each in pod["containers"]:
        security = each["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["runAsNonRoot"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        resources = each["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) & set(resources["limits"])


@pytest.mark.parametrize("name", ["base", "overlays/dev", "overlays/production"])
def test_probes_volumes_and_rules_mount_fit_the_service(name: str) -> None:
    documents = render(name)
    main = container(documents)
    # gunicorn listens on loopback, out of the kubelet's reach: its probes go through the
    # proxy's port, as every caller does.
    proxy_port = next(p["containerPort"] for p in container(documents, "proxy")["ports"]
                      if p["name"] == "http")
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        assert main[probe]["httpGet"] == {"path": path, "port": proxy_port}
    assert "ports" not in main
    proxy = container(documents, "proxy")
    assert proxy["livenessProbe"]["tcpSocket"]["port"] == "http"
    assert proxy["readinessProbe"]["tcpSocket"]["port"] == "http"
    pod = only(documents, "Deployment", "escalator")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    env = {e["name"]: e for e in main["env"]}
    # Writable places under a read-only root: /tmp, and the metrics folder in memory.
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert env["PROMETHEUS_MULTIPROC_DIR"]["value"] == "/tmp/metrics"
    assert volumes[mounts["/tmp/metrics"]]["emptyDir"]["medium"] == "Memory"
    # ESCALATOR_RULES_DIR is the projected volume, built from ConfigMaps that exist.
    rules_dir = settings(documents)["ESCALATOR_RULES_DIR"]
    sources = volumes[mounts[rules_dir]]["projected"]["sources"]
    config_maps = {d["metadata"]["name"] for d in documents if d["kind"] == "ConfigMap"}
    assert {s["configMap"]["name"] for s in sources} <= config_maps
    assert float(settings(documents)["ESCALATOR_RELOAD_INTERVAL_SECONDS"]) > 0
    # API keys come from a Secret, never from the settings ConfigMap.
    for key in ("ESCALATOR_API_KEYS", "ESCALATOR_ADMIN_KEYS"):
        assert "secretKeyRef" in env[key]["valueFrom"]
        assert key not in settings(documents)


def test_the_service_and_network_policy_admit_only_the_proxy_port() -> None:
    documents = render("base")
    # The named port "http" is the proxy's: the Service (and so the ServiceMonitor's
    # scrapes) reach gunicorn only through nginx.
    port = next(p for p in container(documents, "proxy")["ports"] if p["name"] == "http")
    assert port["containerPort"] == 8080
    service = only(documents, "Service", "escalator")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    policy = only(documents, "NetworkPolicy", "escalator")["spec"]
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == [8080]
    egress = sorted({p["port"] for rule in policy["egress"] for p in rule["ports"]})
    assert egress == [53, 6379]
    sources = [s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
               for s in policy["ingress"][0]["from"]]
    assert sources == ["chatbot", "monitoring"]


def test_dev_runs_one_pod_on_its_own_redis() -> None:
    documents = render("overlays/dev")
    assert only(documents, "Deployment", "escalator")["spec"]["replicas"] == 1
    assert not [d for d in documents if d["kind"] == "HorizontalPodAutoscaler"]
    redis_service = only(documents, "Service", "escalator-redis")
    only(documents, "StatefulSet", "escalator-redis")
    port = redis_service["spec"]["ports"][0]["port"]
    url = settings(documents)["ESCALATOR_REDIS_URL"]
    assert url.startswith(f"redis://{redis_service['metadata']['name']}:{port}/")
    assert settings(documents)["ESCALATOR_ENV"] == "development"


def test_production_scales_out_on_an_external_redis() -> None:
    documents = render("overlays/production")
    assert settings(documents)["ESCALATOR_ENV"] == "production"
    assert settings(documents)["ESCALATOR_DECISION_LOG"] == "stdout"
    assert "ESCALATOR_REDIS_URL" not in settings(documents)  # it holds a password
    env = {e["name"]: e for e in container(documents)["env"]}
    assert env["ESCALATOR_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "escalator-redis"
    assert only(documents, "Deployment", "escalator")["spec"]["replicas"] >= 3
    hpa = only(documents, "HorizontalPodAutoscaler", "escalator")["spec"]
    assert hpa["minReplicas"] >= 3 and hpa["maxReplicas"] > hpa["minReplicas"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert not [d for d in documents if d["kind"] == "Secret"]  # created out of band


DEPLOY = (ROOT / "docs" / "operations" / "deploy.md").read_text(encoding="utf-8")
NAMESPACED = {"ConfigMap", "Secret", "Service", "Deployment", "StatefulSet", "NetworkPolicy",
              "PodDisruptionBudget", "HorizontalPodAutoscaler"}


def overlay_namespace(documents: list[dict[str, Any]]) -> str:
    namespaces = {d["metadata"].get("namespace") for d in documents if d["kind"] in NAMESPACED}
    assert len(namespaces) == 1, namespaces
    namespace: str = namespaces.pop()
    return namespace


def test_dev_creates_its_namespace_and_production_says_to_create_one() -> None:
    dev = render("overlays/dev")
    namespace = only(dev, "Namespace", overlay_namespace(dev))
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == \
        "restricted"
    assert dev[0]["kind"] == "Namespace"  # kustomize orders it first: applied first
    # Production does not own its namespace (kubectl delete -k would take the Secrets
    # created out of band with it): the deploy page and the overlay say to create it first.
    production = render("overlays/production")
    assert not [d for d in production if d["kind"] == "Namespace"]
    create = f"kubectl create namespace {overlay_namespace(production)}"
    assert create in DEPLOY
    assert create in (K8S / "overlays" / "production" / "kustomization.yaml").read_text()
    assert DEPLOY.index(create) < DEPLOY.index("kubectl apply -k k8s/overlays/production")


def test_every_dev_pod_meets_the_restricted_pod_security_profile() -> None:
    # What Pod Security Admission's "restricted" level checks, for every pod template
    # (a sidecar or an init container included), since the dev namespace enforces it.
    templates = [d["spec"]["template"] for d in render("overlays/dev")
                 if d["kind"] in ("Deployment", "StatefulSet")]
    assert len(templates) == 2
    for template in templates:
        pod = template["spec"]
        pod_security = pod.get("securityContext", {})
        assert not {"hostNetwork", "hostPID", "hostIPC"} & {k for k, v in pod.items() if v}
        assert not [v for v in pod.get("volumes", []) if "hostPath" in v]
        for box in [*pod.get("initContainers", []), *pod["containers"]]:
            security = {**pod_security, **box.get("securityContext", {})}
            name = box["name"]
            assert security.get("runAsNonRoot") is True, name
            assert security.get("runAsUser", 1) != 0, name
            assert security.get("seccompProfile", {}).get("type") in (
                "RuntimeDefault", "Localhost"), name
            assert security.get("allowPrivilegeEscalation") is False, name
            assert not security.get("privileged"), name
            assert "ALL" in security.get("capabilities", {}).get("drop", []), name
            assert set(security.get("capabilities", {}).get("add", [])) <= {
                "NET_BIND_SERVICE"}, name


def test_the_deploy_page_gives_the_dev_keys_and_how_to_replace_them(tmp_path: Path) -> None:
    secret = only(render("overlays/dev"), "Secret", "escalator-api-keys")
    keys = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(keys) == {"api-keys", "admin-keys"}
    for key in keys.values():
        assert f"`{key}`" in DEPLOY
    # The deploy page's overlay, built beside dev in a copy of k8s/, replaces the keys.
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", DEPLOY, re.S)
                 if "behavior: replace" in b)
    overlay = tmp_path / "k8s" / "overlays" / "my-dev"
    shutil.copytree(K8S, tmp_path / "k8s")
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(textwrap.dedent(block))
    example = re.findall(r"^ *#   (\S+=\S+)$", block, re.M)
    assert [line.split("=")[0] for line in example] == ["api-keys", "admin-keys"]
    (overlay / "keys.env").write_text("\n".join(example) + "\n")
    result = run([*kustomize_command(), str(overlay)])
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    replaced = only(documents, "Secret", "escalator-api-keys")
    assert {k: base64.b64decode(v).decode() for k, v in replaced["data"].items()} == {
        "api-keys": "CALLER_KEY_1,CALLER_KEY_2", "admin-keys": "ADMIN_KEY"}
    env = {e["name"]: e for e in container(documents)["env"]}
    assert env["ESCALATOR_API_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == \
        replaced["metadata"]["name"]
