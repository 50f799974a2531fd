"""The notebooks run top to bottom on embedded/fixture data, and are committed without outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT

from litvision.tracking.notebooks import execute, is_stripped, main

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_data_tour.ipynb",
        "02_compare_runs.ipynb",
        "03_inspect_predictions.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    assert is_stripped(path), f"{path} has outputs: python -m litvision.tracking.notebooks --strip {path}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path) -> None:
    nb = execute(path, out_dir=tmp_path)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the notebook shows its plots"
    assert is_stripped(path), "executing must not write outputs into the committed notebook"

    # The executed copy has outputs: the check fails on it, and strip fixes it.
    executed = tmp_path / path.name
    with pytest.raises(SystemExit) as exit_info:
        main(["--check", str(executed)])
    assert exit_info.value.code == 1
    main(["--strip", str(executed)])
    assert is_stripped(executed)
