"""`litvision.deploy.export`: a trained digits_cnn and a torchvision detector exported to ONNX,
TorchScript and ExportedProgram compute what the checkpoint's PyTorch model computes; bad input is
one line and writes nothing; an export writes a folder of its own, never into a run, and records
every file it wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg, run_cli

from litvision.cli import main as cli_main
from litvision.deploy.export import export_checkpoint
from litvision.deploy.exporters import FORMATS
from litvision.deploy.parity import detection_set_difference
from litvision.errors import UserError


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """digits_cnn trained for a few batches: a real run folder with summary.json and checkpoints."""
    from litvision.train import train

    runs = tmp_path_factory.mktemp("runs")
    cfg = compose_cfg(
        [
            "experiment=digits_cnn",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=4",
            "trainer.limit_val_batches=2",
            "trainer.limit_test_batches=1",
            "logger=csv",
        ],
        runs,
    )
    return train(cfg)


def _digits_batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    from litvision.data.datasets.digits import DigitsDataModule

    dm = DigitsDataModule()
    dm.setup()
    return next(iter(dm.test_dataloader()))[0][:n], dm


def _exported_logits(fmt: str, path: str, x: torch.Tensor) -> torch.Tensor:
    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])
    with torch.no_grad():
        if fmt == "torchscript":
            return torch.jit.load(path)(x)
        return torch.export.load(path).module()(x)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_digits_cnn_export_matches_the_checkpoint(digits_run: dict, tmp_path: Path, fmt: str) -> None:
    """Catches an export of the untrained net (weights not loaded), a fixed batch size, or a lying export.json."""
    from litvision.tasks.classification import ClassificationTask

    out = tmp_path / fmt
    record = export_checkpoint(Path(digits_run["run_dir"]), fmt, out)
    assert Path(record["file"]) == out / FORMATS[fmt] and (out / FORMATS[fmt]).stat().st_size > 1000
    written = json.loads((out / "export.json").read_text())
    assert written["parity_passed"] is True and written["max_abs_diff"] <= 1e-4
    assert written["checkpoint"] == str(Path(digits_run["best_checkpoint"]).resolve())
    assert [c["output_shapes"] for c in written["checks"]] == [[[2, 10]], [[3, 10]]]
    assert written["input"]["shape"] == ["N", 1, 8, 8] and written["outputs"] == {"logits": ["N", 10]}

    # Independently of export.json: real digits through the exported file and through the
    # checkpoint loaded by Lightning, at a batch size the export never saw.
    x, _ = _digits_batch(16)
    task = ClassificationTask.load_from_checkpoint(digits_run["best_checkpoint"], map_location="cpu").eval()
    with torch.no_grad():
        expected = task(x)
    got = _exported_logits(fmt, record["file"], x)
    assert got.shape == (16, 10)
    assert (got - expected).abs().max() <= 1e-4


def test_the_parity_check_fails_an_export_that_does_not_match(digits_run: dict, tmp_path: Path) -> None:
    """The check export.json reports can fail: the exported file against a reference whose logits moved by
    5e-4 fails it, the same reference unmoved passes. Catches: the export's output compared with itself (a
    check that can never fail), and the 1e-4 tolerance loosened (x100)."""
    from litvision.deploy.parity import parity
    from litvision.tasks.classification import ClassificationTask

    record = export_checkpoint(Path(digits_run["run_dir"]), "onnx", tmp_path / "onnx")
    task = ClassificationTask.load_from_checkpoint(digits_run["best_checkpoint"], map_location="cpu").eval()
    x, _ = _digits_batch(8)
    same = parity("onnx", Path(record["file"]), task, [x], detection=False, side=8)
    assert same["passed"] and same["max_abs_diff"] <= 1e-4
    # The output layer's bias moved by 5e-4: every logit moves by exactly that, 5x the 1e-4 tolerance.
    head_bias = [p for n, p in task.named_parameters() if n.endswith("bias")][-1]
    with torch.no_grad():
        head_bias.add_(5e-4)
    moved = parity("onnx", Path(record["file"]), task, [x], detection=False, side=8)
    assert not moved["passed"] and moved["max_abs_diff"] == pytest.approx(5e-4, abs=1e-5), moved


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder`: its bytes and mtime (a finished run must keep both)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def default_export(digits_run: dict) -> dict:
    """`litvision export <run>` with no --out-dir, once for the module: its folder, its output, and
    the run's files before it ran."""
    run = Path(digits_run["run_dir"])
    before = _files(run)
    proc = run_cli("litvision", "export", str(run), "--format", "onnx", check=True)
    (folder,) = (run.parent / "export").iterdir()
    return {"folder": folder, "proc": proc, "run_before": before}


def test_cli_exports_into_a_folder_of_its_own(digits_run: dict, default_export: dict) -> None:
    """Catches: the default folder put inside the source run (refused there: exit 2), and export.json's
    files list left empty or misstating a file; also any of the run's files touched."""
    import hashlib

    run, folder = Path(digits_run["run_dir"]), default_export["folder"]
    assert folder.parent == run.parent / "export"
    assert sorted(p.name for p in folder.iterdir()) == ["export.json", "model.onnx"]
    assert _files(run) == default_export["run_before"]
    record = json.loads((folder / "export.json").read_text())
    model = (folder / "model.onnx").read_bytes()
    assert record["files"] == [
        {"name": "model.onnx", "bytes": len(model), "sha256": hashlib.sha256(model).hexdigest()}
    ]
    assert default_export["proc"].stdout.strip().endswith(str(folder / "export.json"))


# --out-dir and --image-size refusals: {run} is the finished run, {tmp} the test's folder, which holds
# `afile` (a plain file) and `full/` (a folder holding notes.txt).
REFUSALS = {
    "image_size_zero": (["--image-size", "0"], "--image-size='0' is not valid"),
    "image_size_negative": (["--image-size", "-3"], "--image-size='-3' is not valid"),
    "image_size_fraction": (["--image-size", "2.5"], "--image-size='2.5' is not valid"),
    "image_size_zero_side": (["--image-size", "8x0"], "--image-size='8x0' is not valid"),
    "into_the_run": (["--out-dir", "{run}"], "is a run folder (it holds config.yaml, summary.json"),
    "into_the_run_forced": (["--out-dir", "{run}", "--force"], "is a run folder"),
    "inside_the_run": (["--out-dir", "{run}/exported"], "is inside the run folder"),
    "file_in_the_way": (["--out-dir", "{tmp}/afile"], "is a file, not a folder"),
    "file_above": (["--out-dir", "{tmp}/afile/sub"], "(a file is in the way)"),
    "not_empty": (["--out-dir", "{tmp}/full"], "is not empty (it holds notes.txt); name a new or empty"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_export_refusals_are_one_line_before_any_work(digits_run: dict, tmp_path: Path, case: str) -> None:
    """Catches: --image-size checked with `>= 0` (0 and 8x0 reach the model), --force letting a run
    folder through (model.onnx written into a finished run), the parents not checked (a folder
    inside the run is written), a file in the way found only by mkdir, after the work; and any
    refusal leaving a folder or touching the run's bytes or mtimes."""
    run = Path(digits_run["run_dir"])
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    args, wanted = REFUSALS[case]
    args = [a.replace("{run}", str(run)).replace("{tmp}", str(tmp_path)) for a in args]
    before, around, mine = _files(run), sorted(run.parent.rglob("*")), _files(tmp_path)
    proc = run_cli("litvision", "export", str(run), *args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and proc.stdout == "", proc.stderr[-3000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and wanted in line, line
    assert _files(run) == before and sorted(run.parent.rglob("*")) == around
    assert _files(tmp_path) == mine


def _can_bind_read_only() -> bool:
    import shutil
    import subprocess
    import tempfile

    if not shutil.which("unshare"):
        return False
    with tempfile.TemporaryDirectory() as d:
        script = f'mount --bind "{d}" "{d}" && mount -o remount,bind,ro "{d}" && ! touch "{d}/x" 2>/dev/null'
        return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_bind_read_only(), reason="needs `unshare -rm` to bind-mount a folder read-only")
def test_read_only_out_dir_is_one_line_before_any_work(digits_run: dict, tmp_path: Path) -> None:
    """--out-dir on a read-only bind mount (EROFS even for root, which os.access does not see).
    Catches: the read-only probe dropped (refused only by mkdir, after the checkpoint is loaded and
    the model run), or os.access alone trusted (root passes it)."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    ro = tmp_path / "ro"
    ro.mkdir()
    script = f'mount --bind "{ro}" "{ro}" && mount -o remount,bind,ro "{ro}" && exec "$@"'
    cmd = [sys.executable, "-m", "litvision", "export", digits_run["run_dir"], "--out-dir", str(ro / "out")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", *cmd], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = proc.stderr.strip().splitlines()
    assert f"Cannot write --out-dir {ro / 'out'}" in line and "read-only" in line, line
    assert list(ro.iterdir()) == []


def test_force_replaces_the_previous_export_and_records_what_it_wrote(
    digits_run: dict, default_export: dict, tmp_path: Path
) -> None:
    """A second export into a folder holding an ONNX export: refused, then with --force the ONNX
    model and its record are replaced by the TorchScript export, and the user's own file stays.
    Catches: --force not removing the previous export (model.onnx left beside a record that does
    not list it), export.json listing every file in the folder (notes.txt) instead of those written."""
    import shutil

    run, out = Path(digits_run["run_dir"]), tmp_path / "out"
    shutil.copytree(default_export["folder"], out)
    (out / "notes.txt").write_text("mine")
    before = _files(run)
    refused = run_cli("litvision", "export", str(run), "--format", "torchscript", "--out-dir", str(out))
    assert refused.returncode == 2 and "pass --force" in refused.stderr
    run_cli(
        "litvision",
        "export",
        str(run),
        "--format",
        "torchscript",
        "--out-dir",
        str(out),
        "--force",
        check=True,
    )
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "model.torchscript.pt", "notes.txt"]
    record = json.loads((out / "export.json").read_text())
    assert record["format"] == "torchscript"
    assert [f["name"] for f in record["files"]] == ["model.torchscript.pt"]
    assert record["files"][0]["bytes"] == (out / "model.torchscript.pt").stat().st_size
    assert (out / "notes.txt").read_text() == "mine" and _files(run) == before


def _one_line_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["export", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_missing_or_foreign_checkpoint_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Catches a stack trace, or an output folder made before the checkpoint is known to be litvision's."""
    out = tmp_path / "out"
    err = _one_line_error(capsys, [str(tmp_path / "nothere.ckpt"), "--out-dir", str(out)])
    assert "nothere.ckpt does not exist" in err

    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    err = _one_line_error(capsys, [str(foreign), "--out-dir", str(out)])
    assert "is not a litvision checkpoint" in err

    garbage = tmp_path / "garbage.ckpt"
    garbage.write_text("not a checkpoint")
    err = _one_line_error(capsys, [str(garbage), "--format", "torchscript", "--out-dir", str(out)])
    assert "is not a readable PyTorch checkpoint" in err  # the project's one safe loader says so

    empty_run = tmp_path / "run"
    empty_run.mkdir()
    err = _one_line_error(capsys, [str(empty_run), "--out-dir", str(out)])
    assert "holds no checkpoint" in err
    assert not out.exists()


def test_unknown_format_is_one_line(digits_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    err = _one_line_error(
        capsys, [digits_run["run_dir"], "--format", "tflite", "--out-dir", str(tmp_path / "o")]
    )
    assert "'tflite' is not one of onnx, torchscript, exported_program" in err
    assert not (tmp_path / "o").exists()


# -- export through the lifecycle: the key=value form, --cfg, refusals, and the folder it owns -----------
def test_key_value_form_exports_like_the_flag_form(digits_run: dict, tmp_path: Path) -> None:
    """`litvision export source=... format=... out_dir=...` (configs/export.yaml's keys, as every other
    command takes them) is the flag form's export. Catches a key the runner does not read (format
    ignored: model.onnx written) and out_dir ignored (the default folder beside the run)."""
    out = tmp_path / "kv"
    run = Path(digits_run["run_dir"])
    proc = run_cli(
        "litvision",
        "export",
        f"source={run}",
        "format=torchscript",
        f"out_dir={out}",
        "batch_size=3",
        check=True,
    )
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "model.torchscript.pt"], proc.stdout
    record = json.loads((out / "export.json").read_text())
    assert record["format"] == "torchscript" and record["checkpoint"] == str(
        Path(digits_run["best_checkpoint"])
    )
    # batch_size=3 reached the parity check: its two batches are 3 and 4 images.
    assert [c["input_shape"][0] for c in record["checks"]] == [3, 4], record["checks"]


@pytest.mark.parametrize(
    "value",
    ["/tmp/my exports/v1", "/tmp/a,b=c [1] (it's)", "C:\\\\x\\y", "out dir'\\"],
)
def test_flag_values_reach_the_config_whole(value: str) -> None:
    """A flag's value (a path with spaces, commas, brackets, `=`, quotes or backslashes) is the key's
    value after Hydra reads it. Catches the value passed unquoted (Hydra splits or refuses it) and a
    quote or backslash left unescaped."""
    from litvision.commands.export import flag_overrides
    from litvision.config import compose_checked

    overrides = flag_overrides(
        [value, "--out-dir", value, "--image-size", "480x640", "--batch-size", "5", "--force"]
    )
    cfg = compose_checked(overrides, "export")
    assert (cfg.source, cfg.out_dir, cfg.image_size, cfg.batch_size, cfg.force) == (
        value,
        value,
        "480x640",
        5,
        True,
    )
    assert (cfg.format, compose_checked(flag_overrides(["r", "--format=onnx"]), "export").format) == (
        "onnx",
        "onnx",
    )


def test_export_cfg_prints_its_keys_and_writes_nothing(
    digits_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """--cfg shows the composed export config, as for the other commands, and exports nothing."""
    cli_main(
        [
            "export",
            digits_run["run_dir"],
            "--format",
            "exported_program",
            "--out-dir",
            str(tmp_path / "o"),
            "--cfg",
        ]
    )
    shown = capsys.readouterr().out
    assert f"source: {digits_run['run_dir']}" in shown and "format: exported_program" in shown, shown
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv, wanted",
    [
        (["--format", "onnx"], "export needs a checkpoint: litvision export <run folder or .ckpt>"),
        (["{run}", "formt=onnx"], "formt"),
        (["{run}", "{run}"], "takes one run folder or .ckpt, not 2"),
        (["{run}", "--batch-size", "two"], "--batch-size='two' must be a whole number"),
        (["{run}", "image_size=[8,0]"], "--image-size=[8, 0] is not valid"),
        (["{run}", "--out-dir"], "--out-dir needs a value"),
    ],
)
def test_export_request_refusals_are_one_line(
    digits_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], wanted: str
) -> None:
    """Catches a missing source reaching Hydra's MissingMandatoryValue (a traceback), an unknown key
    accepted, a second path silently taken as the source, a list image_size refused as an OmegaConf
    list (or accepted with a zero side), and a flag at the end read as the source."""
    run = digits_run["run_dir"]
    before = sorted(Path(run).parent.rglob("*"))
    err = _one_line_error(capsys, [a.replace("{run}", run) for a in argv])
    assert wanted in err, err
    assert sorted(Path(run).parent.rglob("*")) == before


def test_a_failure_before_the_record_leaves_no_folder(
    digits_run: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the model file is written (during the parity check): the lifecycle removes the
    folder the export made, as for a refused run; a later export into the same place then works.
    Catches the lifecycle's discard dropped (a model without its export.json left behind), and a
    discard that removes a folder which was there before the export."""
    import litvision.deploy.parity as parity_module
    from litvision.cli import run as cli_run

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    out = tmp_path / "new" / "export"
    with monkeypatch.context() as m:
        m.setattr(parity_module, "parity", interrupted)
        with pytest.raises(KeyboardInterrupt):
            cli_run("export", [digits_run["run_dir"], "--out-dir", str(out)])
        assert not (tmp_path / "new").exists()
        kept = tmp_path / "kept"
        kept.mkdir()
        with pytest.raises(KeyboardInterrupt):
            cli_run("export", [digits_run["run_dir"], "--out-dir", str(kept)])
        assert kept.is_dir() and list(kept.iterdir()) == []
    record = cli_run("export", [digits_run["run_dir"], "--out-dir", str(out)])
    assert record["parity_passed"] and sorted(p.name for p in out.iterdir()) == ["export.json", "model.onnx"]


def test_detection_set_difference_ignores_order_and_sees_changes() -> None:
    """Catches an order-sensitive comparison (ties have no defined order), one blind to a moved box, and
    one blind to a changed score (scores left out of the distance, or their difference never taken)."""
    boxes = torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 4, 4]])
    scores = torch.tensor([0.9, 0.9, 0.5])
    labels = torch.tensor([0, 1, 1])
    perm = torch.tensor([2, 0, 1])
    same = detection_set_difference([boxes, scores, labels], [boxes[perm], scores[perm], labels[perm]], 64)
    assert same == {"boxes": 0.0, "scores": 0.0}
    moved = boxes.clone()
    moved[1, 2] += 0.5
    assert detection_set_difference([boxes, scores, labels], [moved, scores, labels], 64)["boxes"] == 0.5
    rescored = torch.tensor([0.9, 0.89, 0.5])
    assert detection_set_difference([boxes, scores, labels], [boxes, rescored, labels], 64)[
        "scores"
    ] == pytest.approx(0.01)
    # Same boxes, same scores, but each score on the other box of label 1.
    swapped = torch.tensor([0.9, 0.5, 0.9])
    assert detection_set_difference([boxes, scores, labels], [boxes, swapped, labels], 64)[
        "scores"
    ] == pytest.approx(0.4)
    # One box predicted twice with two scores (the same set, listed in the other order): each must
    # meet its own score, so scores take part in the matching, not only in the difference.
    twice = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 10]]), torch.tensor([0.9, 0.3]), torch.tensor([0, 0])
    flipped = [t.flip(0) for t in twice]
    assert detection_set_difference(list(twice), flipped, 64) == {"boxes": 0.0, "scores": 0.0}
    relabelled = torch.tensor([0, 0, 1])
    # The relabelled box can only be matched to a box of its new label, 16 px away.
    assert detection_set_difference([boxes, scores, labels], [boxes, scores, relabelled], 64)["boxes"] == 16.0
    assert detection_set_difference([boxes, scores, labels], [boxes[:2], scores[:2], labels[:2]], 64)[
        "scores"
    ] == float("inf")


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """fasterrcnn_shapes (torchvision Faster R-CNN MobileNetV3-FPN from scratch) after two training steps at 64 px."""
    from litvision.data.fixtures import fixture_maker
    from litvision.train import train

    tmp = tmp_path_factory.mktemp("det")
    overrides = fixture_maker("shapes_coco")(tmp / "data")
    cfg = compose_cfg(
        [
            "experiment=fasterrcnn_shapes",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "test=false",
            "logger=csv",
            "model.net.min_size=64",
            "model.net.max_size=64",
            *overrides,
        ],
        tmp / "runs",
    )
    return train(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_torchvision_detector_export_matches_the_checkpoint(
    detector_run: dict, tmp_path: Path, fmt: str
) -> None:
    """Catches labels left in torchvision's 1..C, an untrained export, or a parity check that passes anything."""
    from litvision.tasks.detection import DetectionTask

    record = export_checkpoint(Path(detector_run["run_dir"]), fmt, tmp_path)
    written = json.loads((tmp_path / "export.json").read_text())
    assert written["parity_passed"] and written["task"] == "detection"
    assert written["outputs"] == {"boxes": ["K", 4], "scores": ["K"], "labels": ["K"]}
    (h, w) = written["input"]["shape"][1:]

    task = DetectionTask.load_from_checkpoint(detector_run["best_checkpoint"], map_location="cpu").eval()
    image = torch.rand(3, h, w, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = task([image])[0]
    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(record["file"], providers=["CPUExecutionProvider"])
        got = [torch.from_numpy(o) for o in sess.run(None, {"image": image.numpy()})]
    else:
        with torch.no_grad():
            got = list(torch.jit.load(record["file"])(image))
    assert len(got[0]) > 0
    expected = [ref["boxes"], ref["scores"], ref["labels"]]
    assert int(expected[2].min()) >= 0 and int(got[2].min()) >= 0  # litvision's labels, not torchvision's
    diff = detection_set_difference(got, expected, max(h, w))
    assert diff["boxes"] <= 1e-5 * max(h, w) and diff["scores"] <= 1e-4, diff


@pytest.mark.slow
def test_detector_exported_program_is_refused_in_one_line(
    detector_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Catches a graph dump or stack trace instead of one line, or a leftover empty output folder."""
    out = tmp_path / "ep"
    with pytest.raises(UserError, match="torch.export cannot export fasterrcnn_mobilenet_v3_large_fpn"):
        export_checkpoint(Path(detector_run["run_dir"]), "exported_program", out)
    assert not out.exists()
    err = _one_line_error(
        capsys, [detector_run["run_dir"], "--format", "exported_program", "--out-dir", str(out)]
    )
    assert "use --format onnx or --format torchscript" in err


def _checkpoint_of(cfg_overrides: list[str], runs: Path, path: Path, noise: float) -> Path:
    """A checkpoint as litvision writes one (hyper-parameters and weights), of an untrained task
    whose weights are perturbed so that its scores spread out like a trained model's."""
    from omegaconf import OmegaConf

    from litvision.build import build_task

    cfg = compose_cfg(cfg_overrides, runs)
    OmegaConf.resolve(cfg)
    torch.manual_seed(0)
    task = build_task(cfg)
    with torch.no_grad():
        for p in task.parameters():
            p.add_(torch.randn_like(p) * noise)
    hp = {**dict(task.hparams), "class_names": task.class_names}
    torch.save({"hyper_parameters": hp, "state_dict": task.state_dict()}, path)
    return path


@pytest.mark.slow
def test_an_export_that_only_fits_its_example_image_is_caught(
    runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """SSDlite through the TorchScript-based ONNX exporter keeps values traced from the example image:
    right on that image, wrong on the next. Catches a parity check run on the example image alone."""
    ckpt = _checkpoint_of(
        [
            "experiment=ssdlite_voc",
            "model.net.weights_backbone=null",
            "model.net.min_size=128",
            "data.num_classes=3",
        ],
        runs_dir,
        tmp_path / "ssdlite.ckpt",
        noise=0.3,
    )
    out = tmp_path / "onnx"
    err = _one_line_error(
        capsys, [str(ckpt), "--format", "onnx", "--image-size", "128", "--out-dir", str(out)]
    )
    assert "differs from the PyTorch model" in err
    written = json.loads((out / "export.json").read_text())
    first, second = written["checks"]
    assert first["passed"] and not second["passed"] and not written["parity_passed"]
