"""`escalator fit`: the shipped weights are exactly what the command produces from the data,
and a folder without the data is a clear error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from escalator.cli import main

ROOT = Path(__file__).resolve().parents[2]
# ../shared/data beside the project, as CI lays it (ESCALATOR_DATA_DIR elsewhere).
DATA = Path(os.environ.get("ESCALATOR_DATA_DIR", ROOT.parent / "shared" / "data"))


@pytest.mark.skipif(not (DATA / "frustration").is_dir() or not (DATA / "breakdown").is_dir(),
                    reason="../shared/data (the public data sets) is not beside the project")
@pytest.mark.parametrize("model", ["frustration", "breakdown"])
def test_the_shipped_weights_are_what_the_fit_command_writes(model: str, tmp_path: Path) -> None:
    pytest.importorskip("numpy", reason="fitting needs the [fit] extra")
    out = tmp_path / f"fitted_{model}.yaml"
    result = CliRunner().invoke(main, ["fit", model, "--data", str(DATA),
                                       "--rules", str(ROOT / "rules"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "nested CV" in result.output and "effect" in result.output
    shipped = ROOT / "rules" / "lexicons" / f"fitted_{model}.yaml"
    assert out.read_text() == shipped.read_text(), (
        f"rules/lexicons/fitted_{model}.yaml is not what `escalator fit {model}` writes: "
        "refit it (the command is in the file)")


def test_a_folder_without_the_data_set_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("numpy", reason="fitting needs the [fit] extra")
    result = CliRunner().invoke(main, ["fit", "breakdown", "--data", str(tmp_path),
                                       "--rules", str(ROOT / "rules")])
    assert result.exit_code == 1
    assert f"{tmp_path}/breakdown/BETOLD_valid.json: no such file" in result.output
