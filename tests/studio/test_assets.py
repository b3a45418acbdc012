"""What the studio ships: every vendored file with its licence beside it, no page that
reaches outside, charts that stand alone, and rule edits that leave the rest of a file."""

from __future__ import annotations

import re
from pathlib import Path

from flask.testing import FlaskClient
from support.studio import finished, token

from escalator.studio import charts, ruleyaml

STATIC = Path(__file__).resolve().parents[2] / "escalator" / "studio" / "static"
ROOT = Path(__file__).resolve().parents[2]


def test_every_vendored_file_has_its_licence_and_a_pinned_version() -> None:
    vendor = STATIC / "vendor"
    libraries = [d for d in vendor.iterdir() if d.is_dir()]
    assert libraries
    for library in libraries:
        assert re.fullmatch(r"[a-z0-9.-]+-\d+\.\d+\.\d+", library.name), library.name
        assert (library / "LICENSE").is_file(), library
    for path in vendor.rglob("*"):
        if path.is_file():
            top = vendor / path.relative_to(vendor).parts[0]
            assert (top / "LICENSE").is_file(), path


def test_the_packaged_data_includes_the_studio(tmp_path: Path) -> None:
    setup = (ROOT / "setup.cfg").read_text()
    assert "escalator.studio" in setup
    assert "static/vendor/*/LICENSE" in setup or "static/vendor/**" in setup


EXTERNAL = re.compile(r"""(?:src|href|action|url\()\s*=?\s*["']?\s*(?:https?:)?//""", re.I)


def test_no_page_references_anything_outside(studio_app, studio: FlaskClient) -> None:
    finished(studio_app)
    csrf = token(studio)
    job = studio_app.extensions["escalator.studio"].jobs.latest()
    pages = ["/studio/", "/studio/rules/frustration-spike", "/studio/rules/new",
             "/studio/files/loops.yaml", "/studio/try", "/studio/replay", "/studio/audit",
             "/studio/tests", "/studio/save", f"/studio/replay/{job.id}"]
    for path in pages:
        html = studio.get(path).get_data(as_text=True)
        assert not EXTERNAL.search(html), (path, EXTERNAL.search(html))
        assert "http://" not in html and "https://" not in html, path
    assert csrf
    for path in STATIC.glob("*.*"):
        assert not EXTERNAL.search(path.read_text()), path


def test_a_chart_stands_alone_with_its_words() -> None:
    svg = str(charts.bars("Routed by channel", ["web", "voice"],
                          [charts.Series("Saved", [0.25, None], ["1 of 4", ""])],
                          group=charts.Group(references=[0.2, 0.2],
                                             reference_label="four fifths",
                                             missing={1: "not enough decisions"})))
    assert svg.startswith("<svg") and 'role="img"' in svg and "<title" in svg
    assert "25.0% (1 of 4)" in svg and "not enough decisions" in svg
    assert "stroke-dasharray" in svg  # the reference line
    assert "<desc" in svg and "web, Saved: 25.0% (1 of 4)" in svg
    columns = str(charts.columns("By turn", ["1", "2"], [charts.Series("a", [3.0, 0.0])]))
    assert columns.count("<rect") == 2 and ">3<" in columns


def test_a_rule_edit_leaves_the_rest_of_the_file_as_written() -> None:
    text = (ROOT / "rules" / "frustration.yaml").read_text()
    rule = ruleyaml.raw_rule(text, "frustration-spike")
    rule["when"]["all"][0]["gte"] = 0.8
    edited, start = ruleyaml.replace_rule(text, "frustration-spike", rule)
    before, after = text.split("\n"), edited.split("\n")
    entry = ruleyaml.find(text, "frustration-spike")
    assert before[:entry.start] == after[:entry.start]
    tail = len(before) - entry.end
    assert before[-tail:] == after[-tail:]
    assert "        - {fact: frustration.fitted, gte: 0.8}" in after
    assert ruleyaml.condition_lines(start, rule) == [
        after.index("        - {fact: frustration.fitted, gte: 0.8}") + 1]
    added, _ = ruleyaml.insert_rule(edited, dict(rule, id="x-copy"), after="frustration-spike")
    assert ruleyaml.delete_rule(added, "x-copy") == edited
    assert ruleyaml.set_version('ruleset: a\nversion: "1.2"  # note\n', "1.3") == \
        'ruleset: a\nversion: "1.3"  # note\n'
