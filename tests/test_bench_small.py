"""`python -m bench setup_scale --small` and `step_overhead --small`: the benchmarks run and write their
results (the figures are not asserted: on the suite's size they mean nothing)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli


def test_setup_scale_and_step_overhead_run_small(tmp_path: Path) -> None:
    """Catches: a benchmark that no longer runs (an import or a key renamed under it), `--small`
    refused or writing over the full run's bench/results/<name>.json, and a second set-up that reads
    images again (the file cache bypassed: `image_files_opened_in_setup` > 0)."""
    out = tmp_path / "results"
    proc = run_cli(
        "bench", "setup_scale", "step_overhead", "--small", env={"BENCH_RESULTS_DIR": str(out)}, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["setup_scale_small.json", "step_overhead_small.json"]
    scale = json.loads((out / "setup_scale_small.json").read_text())
    (folder,) = [v for v in scale["image_folder"].values() if isinstance(v, dict)]
    assert folder["second_run"]["image_files_opened_in_setup"] == 0
    assert folder["first_run"]["seconds_to_first_batch"] > 0
    assert str(scale["image_folder"]["1000000"]).startswith("skipped:")
    (coco,) = scale["coco"].values()
    assert {"litvision", "litvision_second_run", "pycocotools", "time_ratio"} <= set(coco)
    assert scale["worker_memory"]["litvision_records"]["rss_mb_end"] > 0
    steps = json.loads((out / "step_overhead_small.json").read_text())
    assert set(steps["ms_per_step"]) == {
        "hand_loop", "bare_lightning", "bare_lightning_csv_log", "litvision", "litvision_progress_bar"
    }  # fmt: skip
    assert steps["litvision_extra_over_bare_lightning_extra"] is not None
