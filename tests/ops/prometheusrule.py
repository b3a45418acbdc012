"""k8s/monitoring/prometheusrule.yaml is alerts.rules.yaml's groups wrapped in a
PrometheusRule: `python tests/ops/prometheusrule.py` writes it, `--check` only compares.

The wrapping is textual (the groups indented under spec:), so the comments that explain
each alert reach the cluster's copy too.
"""

from __future__ import annotations

import sys
from pathlib import Path

MONITORING = Path(__file__).resolve().parents[2] / "k8s" / "monitoring"
RULES_FILE = MONITORING / "alerts.rules.yaml"
PROMETHEUS_RULE_FILE = MONITORING / "prometheusrule.yaml"

HEADER = """\
# GENERATED from alerts.rules.yaml by `python tests/ops/prometheusrule.py`: edit that file
# (promtool checks and tests it), then run the script. tests/ops checks they agree.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: escalator
  labels:
    app.kubernetes.io/name: escalator
    # The Prometheus Operator picks up rules whose labels match its ruleSelector;
    # kube-prometheus-stack's default is release: <its Helm release name>.
    release: kube-prometheus-stack
spec:
"""


def render(rules_text: str) -> str:
    """The PrometheusRule manifest for a Prometheus rule file's text."""
    lines = rules_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = [f"  {line}" if line.strip() else "" for line in lines[start:]]
    return HEADER + "\n".join(body) + "\n"


def main(argv: list[str]) -> int:
    wanted = render(RULES_FILE.read_text(encoding="utf-8"))
    current = (PROMETHEUS_RULE_FILE.read_text(encoding="utf-8")
               if PROMETHEUS_RULE_FILE.exists() else "")
    if "--check" in argv:
        if current != wanted:
            print(f"{PROMETHEUS_RULE_FILE} is out of date: run python {__file__}")
            return 1
        return 0
    if current != wanted:
        PROMETHEUS_RULE_FILE.write_text(wanted, encoding="utf-8")
        print(f"wrote {PROMETHEUS_RULE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
