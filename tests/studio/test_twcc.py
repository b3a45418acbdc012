"""On real traffic: the studio's replay of the twcc conversations shows the numbers
`escalator replay` prints for the same files (the data is read where it lies, beside the
project, and never copied into it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from support.rulesets import copy_rules
from support.studio import finished, token

from escalator.studio import create_local_app

ROOT = Path(__file__).resolve().parents[2]
# ../shared/data beside the project, as CI lays it (ESCALATOR_DATA_DIR elsewhere).
DATA = Path(os.environ.get("ESCALATOR_DATA_DIR", ROOT.parent / "shared" / "data"))


@pytest.mark.skipif(not (DATA / "traffic").is_dir(),
                    reason="../shared/data (the public data sets) is not beside the project")
def test_the_studio_replays_twcc_as_escalator_replay_does(tmp_path: Path) -> None:
    corpus = tmp_path / "twcc.jsonl"
    subprocess.run([sys.executable, "-m", "escalator", "corpus", "convert", "--from", "twcc",
                    str(DATA / "traffic" / "twcc_dev.json"), "-o", str(corpus)], check=True)
    saved = copy_rules(tmp_path / "saved")
    edited = tmp_path / "edited"
    shutil.copytree(saved, edited)
    lowered = (saved / "frustration.yaml").read_text().replace(
        "frustration.fitted, gte: 0.85", "frustration.fitted, gte: 0.75")
    (edited / "frustration.yaml").write_text(lowered)

    app = create_local_app(saved, [corpus])
    try:
        client: FlaskClient = app.test_client()
        client.environ_base["HTTP_HOST"] = "127.0.0.1"
        finished(app)
        csrf = token(client)
        client.post("/studio/files/frustration.yaml", data={"csrf_token": csrf,
                                                           "text": lowered})
        response = client.post("/studio/replay", data={"csrf_token": csrf, "corpus": "0"})
        job_id = response.headers["Location"].rsplit("/", 1)[1]
        finished(app, seconds=300)
        page = client.get(f"/studio/replay/{job_id}").get_data(as_text=True)
        job = app.extensions["escalator.studio"].jobs.get(job_id)
    finally:
        app.extensions["escalator.studio"].close()

    expected = json.loads(subprocess.run(
        [sys.executable, "-m", "escalator", "replay", str(corpus), "--rules", str(edited),
         "--against", str(saved), "--json"], capture_output=True, text=True,
        check=True).stdout)
    assert expected["conversations"] > 500
    assert job.edited.summary.as_dict() == expected["rules"]
    assert job.saved.summary.as_dict() == expected["against"]
    assert [vars(c) for c in job.changes] == expected["changes"]
    assert f'id="changed-count">{expected["decisions_changed"]}<' in page
    assert f'id="rate-edited">{expected["escalation_rate"]["rules"] * 100:.1f}%<' in page
    assert f'id="rate-saved">{expected["escalation_rate"]["against"] * 100:.1f}%<' in page
