"""The README is tested, and so are the pages it points to (docs/*.md, bench/README.md): every command line
in their ```bash blocks is either run here as a real subprocess (with small overrides appended: few batches,
fixture data in the dataset's own format, pretrained weights off) or listed in NOT_RUNNABLE with the reason
and the line it is refused with. A command that is neither fails `test_every_readme_command_is_handled`, and
so does a stale entry here.

Commands run in a sandbox project (links to this checkout's Makefile, configs, experiments and src; its own
runs/, data/ and sweeps/), so `runs/digits_cnn/<stamp>` and `photos/` mean what they say and nothing is
written into the checkout. `make` targets run through make with PYTHON=<this interpreter> (no .venv).

A README command known to fail goes in EXPECTED_BROKEN with the reason: it is still run and must fail
(strict xfail), so the entry is removed the day it works. It is empty: every README command works.

Cost: the coverage and refusal checks take about a minute; the `slow` groups run ~45 tiny trainings, each a
fresh process: 320 s of the suite's 1500 s of test time (764 s wall on two workers, idle 2-core VM,
2026-12-05). The `logger=wandb` line once took 103-333 s in the suite and 8 s by hand: the other worker's
idle OpenMP threads were spinning on its core (15 s since each test process runs one thread: conftest.py).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import ROOT, SLURM_COMMANDS, path_without, unreachable_slurm_path

README = ROOT / "README.md"


def doc_files() -> list[Path]:
    """The README and the pages its sections moved to: their commands are all run or listed here."""
    return [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]


# Appended to every training command that is run: a couple of batches of one epoch, no live progress bar.
TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.log_every_n_steps=1",
    "callbacks.rich_progress_bar=null",
    "data.num_workers=0",
]
# Multirun sweeps: one batch each (Hydra's basic launcher runs the jobs in one process).
TINY_SWEEP = [*TINY, "trainer.limit_train_batches=1"]

# ------------------------------------------------------------------ reading the README


def strip_comment(line: str) -> str:
    """The line without its shell comment (a `#` at the start or after a blank, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def readme_commands(text: str | None = None) -> list[str]:
    """Every command line of the ```bash blocks of `text` (by default of every file of `doc_files()`),
    continuations joined, comments dropped, blanks collapsed."""
    if text is None:
        text = "\n".join(path.read_text() for path in doc_files())
    commands = []
    for body in re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```", text, re.S | re.M):
        for line in body.replace("\\\n", " ").splitlines():
            line = " ".join(strip_comment(line).split())
            if line:
                commands.append(line)
    return commands


# ------------------------------------------------------------------ what is done with each command


@dataclass(frozen=True)
class Run:
    """Run by the test `group` (test_<group>); `variants` replace the command's own text where it is a
    template (alternatives `a|b`, an optional `[X=...]`, placeholders); `data` names the fixture whose
    overrides are appended; `expect` are globs (relative to the sandbox) that must exist afterwards."""

    group: str
    variants: tuple[str, ...] = ()
    data: str | None = None
    tiny: bool = True
    expect: tuple[str, ...] = ()
    # glob -> text the newest matching file must hold: the command's own arguments took effect.
    expect_text: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotRunnable:
    """Cannot run here; `check` (a command, in the README's words with placeholders filled) is run and must
    exit with code 2 and the one line `refusal` (a regex); or `composes` (the command with `--cfg`: the
    config it would train, not run; must contain the text given); or `dry_run` (`make -n` shows it)."""

    reason: str
    check: str | None = None
    refusal: str | None = None
    composes: str | None = None
    dry_run: str | None = None


GPU_REFUSAL = r"^error: trainer\.accelerator=gpu but this machine has no CUDA GPU"
SLURM_REFUSAL = r"^error: sinfo failed .*is the SLURM controller reachable\?"
# The same commands on a machine with no SLURM at all (the sandbox's PATH has its clients, unreachable).
SLURM_MISSING = r"^error: sbatch/sinfo not found: `make submit` runs on a SLURM login node\."
# Pretrained weights cannot be downloaded here (the same architecture is built from scratch); ResNet-50 sees
# 64-px crops of the flower fixture; the shapes fixture is 64 px.
SMALL_FLOWERS = ("data.image_size=64", "data.resize_size=72")
NO_WEIGHTS = ("model.net.weights=null", *SMALL_FLOWERS)
YOLO_SMALL = ("model.net.image_size=64",)
HELP_COMMANDS = ("fit", "test", "predict", "tune", "export", "list", "compare", "sweep", "submit")

RUN: dict[str, Run] = {
    # ---- the default experiment; its run is the one eval / predict / export / compare use
    "make train": Run("digits", expect=("runs/digits_cnn/*/summary.json", "runs/digits_cnn/*/train.log")),
    "litvision fit experiment=digits_cnn trainer.max_epochs=5": Run("digits"),
    "litvision test ckpt_path=runs/digits_cnn/<stamp>/checkpoints/last.ckpt": Run(
        "digits", expect=("runs/digits_cnn/eval/*/summary.json",)
    ),
    "litvision predict ckpt_path=<ckpt> input=<folder>": Run(
        "digits",
        variants=("litvision predict ckpt_path=runs/digits_cnn/<stamp>/checkpoints/last.ckpt input=photos/",),
        tiny=False,
        expect=("runs/digits_cnn/predict/*/predictions.csv",),
    ),
    "litvision list": Run("digits"),
    "litvision compare --exp digits_cnn": Run("digits", expect=("runs/digits_cnn/compare/runs.md",)),
    "litvision sweep experiment=digits_cnn seed=1,2": Run(
        "digits", expect=("runs/digits_cnn/multirun/*/1/summary.json",)
    ),
    "litvision <command> --help": Run(
        "digits", variants=tuple(f"litvision {c} --help" for c in HELP_COMMANDS), tiny=False
    ),
    "make predict CKPT=runs/digits_cnn/<stamp>/checkpoints/last.ckpt INPUT=photos/": Run(
        "digits", tiny=False, expect=("runs/digits_cnn/predict/*/predictions.json",)
    ),
    'make tune EXP=digits_cnn ARGS="+tune.min_lr=1e-6"': Run(
        "digits",
        tiny=False,
        extra=("+tune.num_training=10",),
        expect=("runs/digits_cnn/tune/*/summary.json",),
        # The Makefile passes ARGS on (a tune without them sweeps from 1e-7).
        expect_text={"runs/digits_cnn/tune/*/summary.json": '"min_lr": 1e-06'},
    ),
    "make export RUN=runs/digits_cnn/<stamp> FORMAT=onnx": Run(
        "digits", tiny=False, expect=("runs/digits_cnn/export/*/export.json",)
    ),
    'make train EXP=X ARGS="trainer.accumulate_grad_batches=4 trainer.gradient_clip_val=1.0"': Run(
        "digits",
        variants=(
            'make train EXP=digits_cnn ARGS="trainer.accumulate_grad_batches=4 '
            'trainer.gradient_clip_val=1.0"',
        ),  # fmt: skip
    ),
    'make train EXP=digits_cnn ARGS="trainer=ddp_cpu"': Run("digits"),
    'make train EXP=digits_cnn ARGS="logger=many"': Run("digits", expect=("runs/digits_cnn/*/mlflow",)),
    'make train EXP=digits_cnn ARGS="logger=many logger.wandb.project=my-project logger.wandb.log_model=true"': Run(
        "digits"
    ),
    'WANDB_PROJECT=my-project WANDB_ENTITY=my-team make train ARGS="logger=wandb"': Run(
        "digits", expect=("runs/digits_cnn/*/wandb/offline-run-*",)
    ),
    "make compare": Run("digits", tiny=False, expect=("runs/digits_cnn/compare/runs.md",)),
    "make compare RUNS='runs/digits_cnn/2026-11-2*'": Run(
        "digits", variants=("make compare RUNS='runs/digits_cnn/<month>*'",), tiny=False
    ),
    "python -m litvision.compare runs/digits_cnn --all-metrics --out /tmp/cmp": Run(
        "digits",
        variants=("python -m litvision.compare runs/digits_cnn --all-metrics --out tmp/cmp",),
        tiny=False,
        expect=("tmp/cmp/runs.csv",),
    ),
    # ---- sweeps and the comparisons of a sweep
    'make sweep EXP=digits_cnn ARGS="model.optimizer.lr=1e-3,1e-2 seed=1,2,3"': Run("sweeps"),
    'make sweep EXP=digits_cnn ARGS="hparams_search=digits_cnn_optuna hydra.sweeper.n_trials=40"': Run(
        "sweeps",
        variants=(
            'make sweep EXP=digits_cnn ARGS="hparams_search=digits_cnn_optuna hydra.sweeper.n_trials=2"',
        ),
        expect=("runs/digits_cnn/multirun/*/optimization_results.yaml",),
    ),
    'make sweep ARGS="model.optimizer.lr=1e-3,3e-2 seed=1,2,3"': Run("sweeps"),
    # The same command again resumes its sweep (one more trial here); the folder's own overrides hold the tiny ones.
    'make sweep EXP=digits_cnn ARGS="hparams_search=digits_cnn_optuna hydra.sweeper.n_trials=60"': Run(
        "sweeps",
        variants=(
            'make sweep EXP=digits_cnn ARGS="hparams_search=digits_cnn_optuna hydra.sweeper.n_trials=3"',
        ),
        expect=("runs/digits_cnn/multirun/sweep-*/2/summary.json",),
    ),
    "litvision sweep resume=runs/digits_cnn/multirun/sweep-<id>": Run("sweeps", tiny=False),
    "make sweep RESUME=runs/digits_cnn/multirun/sweep-<id>": Run("sweeps", tiny=False),
    "make compare RUNS=runs/digits_cnn/multirun/sweep-<id>": Run("sweeps", tiny=False),
    "make compare RUNS=runs/digits_cnn/multirun/sweep-<id> GROUP_BY=seed": Run("sweeps", tiny=False),
    "make wandb-sweep EXP=digits_cnn [SWEEP=sweeps/digits_cnn.yaml]": Run(
        "sweeps",
        variants=(
            "make wandb-sweep EXP=digits_cnn",
            "make wandb-sweep EXP=digits_cnn SWEEP=sweeps/digits_cnn.yaml",
        ),
        tiny=False,
        expect=("sweeps/digits_cnn.yaml",),
    ),
    # ---- transfer learning on flower_photos (the archive's layout), weights off or from a local file
    'make train EXP=resnet50_flowers ARGS="model.net.weights=/path/to/resnet50.pth model.net.load_mode=shape_match"': Run(
        "transfer",
        data="flowers",
        variants=(
            'make train EXP=resnet50_flowers ARGS="model.net.weights=<resnet50.pth> '
            'model.net.load_mode=shape_match"',
        ),
        extra=SMALL_FLOWERS,
    ),
    'make train EXP=resnet50_flowers ARGS="model.freeze=backbone"': Run(
        "transfer",
        data="flowers",
        variants=(
            'make train EXP=resnet50_flowers ARGS="model.freeze=backbone"',
            # the alternative in the line's comment
            'make train EXP=resnet50_flowers ARGS="model.freeze=[layer4,fc]"',
        ),
        extra=NO_WEIGHTS,
        expect=("runs/resnet50_flowers/*/summary.json",),
    ),
    'make train EXP=resnet50_flowers ARGS="+model.param_groups.head.prefixes=[fc] +model.param_groups.head.lr=0.01"': Run(
        "transfer", data="flowers", extra=NO_WEIGHTS
    ),
    "make train EXP=resnet50_flowers_unfreeze": Run("transfer", data="flowers", extra=NO_WEIGHTS),
    'make train EXP=resnet50_flowers ARGS="test_tta=hflip"': Run(
        "transfer", data="flowers", extra=NO_WEIGHTS
    ),
    "make compare EXP=resnet50_flowers": Run(
        "transfer", tiny=False, expect=("runs/resnet50_flowers/compare/runs.md",)
    ),
    # ---- training extras (CIFAR-10 in its pickle format; an image folder)
    # "Your own images": the quick start on the default experiment.
    'make train ARGS="data=image_folder data.root=/data/my_images"': Run(
        "extras", data="image_folder", expect=("runs/digits_cnn/*/summary.json",)
    ),
    'make train EXP=resnet18_cifar10 ARGS="model.ema_decay=0.999"': Run("extras", data="cifar10"),
    'make train EXP=resnet18_cifar10 ARGS="data.mixup_alpha=0.2 data.cutmix_alpha=1.0 data.random_erasing=0.25"': Run(
        "extras", data="cifar10"
    ),
    'make train EXP=<exp> ARGS="data=image_folder data.root=/data/skewed model.class_weights=auto"': Run(
        "extras",
        # <exp>: the default experiment, the README's "any folder trains this way".
        variants=(
            'make train EXP=digits_cnn ARGS="data=image_folder data.root=/data/skewed model.class_weights=auto"',
        ),
        data="image_folder",
    ),
    # ---- detection
    # "Your own boxes": a YOLO folder (the fixture's data.yaml names VOC's 20 classes; 64 px here).
    'make train EXP=yolov1_shapes ARGS="data=yolo data.root=/data/my_boxes data.num_classes=2 data.image_size=128"': Run(
        "detection",
        variants=(
            'make train EXP=yolov1_shapes ARGS="data=yolo data.root=/data/my_boxes data.num_classes=20 '
            'data.image_size=128"',
        ),  # fmt: skip
        data="yolo",
        extra=YOLO_SMALL,
        expect=("runs/yolov1_shapes/*/summary.json",),
    ),
    "make train EXP=yolov1_shapes": Run(
        "detection", data="shapes_voc", extra=YOLO_SMALL, expect=("runs/yolov1_shapes/*/summary.json",)
    ),
    'make train EXP=yolov1_shapes ARGS="model.net.box_loss=ciou"': Run(
        "detection", data="shapes_voc", extra=YOLO_SMALL
    ),
    # docs/detection.md: the small-data recipe (FCOS on a timm ResNet-18), on the 64 px fixture.
    "make train EXP=det_small_shapes": Run(
        "detection",
        data="shapes_voc",
        extra=("data.image_size=64",),
        expect=("runs/det_small_shapes/*/summary.json",),
    ),
    "make predict EXP=yolov1_shapes CKPT=runs/yolov1_shapes/<stamp>/checkpoints/last.ckpt INPUT=photos/": Run(
        "detection", tiny=False, expect=("runs/yolov1_shapes/predict/*/detections.json",)
    ),
    'make train EXP=fasterrcnn_voc ARGS="data.root=/data/VOC"': Run(
        "detection",
        data="voc",
        extra=("model.net.weights_backbone=null", "model.net.min_size=64", "model.net.max_size=96"),
    ),
    "python -m litvision.data.datasets.convert voc2yolo|coco2yolo|yolo2coco ...": Run(
        "detection",
        variants=(
            "python -m litvision.data.datasets.convert voc2yolo --voc-root <voc> --sets 2007/trainval --out tmp/yolo_from_voc",
            "python -m litvision.data.datasets.convert coco2yolo --ann <coco>/annotations/instances_val2017.json "
            "--images <coco>/val2017 --split val --out tmp/yolo_from_coco",
            "python -m litvision.data.datasets.convert yolo2coco --root tmp/yolo_from_voc --split trainval --out tmp/coco.json",
        ),
        tiny=False,
        expect=("tmp/yolo_from_voc/labels/*/*.txt", "tmp/yolo_from_coco/labels/val/*.txt", "tmp/coco.json"),
    ),
    "python -m litvision.data.datasets.shapes --out /tmp/shapes --num-train 512": Run(
        "detection",
        variants=("python -m litvision.data.datasets.shapes --out tmp/shapes --num-train 512",),
        tiny=False,
        expect=("tmp/shapes/*",),
    ),
}

NOT_RUNNABLE: dict[str, NotRunnable] = {
    "make test": NotRunnable("the whole suite, this test included", dry_run="-m pytest"),
    "make mutate": NotRunnable(
        "mutation testing: ~30 min of mutants over the listed modules (not part of CI)",
        dry_run="-m bench.mutate",
    ),
    'make mutate ARGS="duplicates mixing"': NotRunnable(
        "mutation testing of two modules: minutes of mutants (not part of CI)",
        dry_run="-m bench.mutate duplicates mixing",
    ),
    'make mutate ARGS="splits optim"': NotRunnable(
        "mutation testing of two modules: minutes of mutants (not part of CI)",
        dry_run="-m bench.mutate splits optim",
    ),
    'make train EXP=resnet50_flowers ARGS="data.root=/data/flower_photos model.net.weights=IMAGENET1K_V2"': NotRunnable(
        "downloads the ImageNet weights (no network here); the same line with a local file is run above",
        composes="weights: IMAGENET1K_V2",
    ),
    'make train EXP=X ARGS="trainer=ddp trainer.precision=bf16-mixed trainer.sync_batchnorm=true"': NotRunnable(
        "needs GPUs",
        check='make train EXP=digits_cnn ARGS="trainer=ddp trainer.precision=bf16-mixed trainer.sync_batchnorm=true"',
        refusal=GPU_REFUSAL,
    ),
    'make train EXP=X ARGS="trainer=gpu trainer.precision=16-mixed compile=true channels_last=true"': NotRunnable(
        "needs a GPU",
        check='make train EXP=digits_cnn ARGS="trainer=gpu trainer.precision=16-mixed compile=true channels_last=true"',
        refusal=GPU_REFUSAL,
    ),
    "torchrun --nnodes=2 --nproc-per-node=8 --node-rank=0 --master-addr=10.0.0.1 --master-port=29500 -m "
    "litvision.train experiment=X trainer=multinode trainer.num_nodes=2 trainer.devices=8 "
    "hydra.run.dir=/shared/runs/X/run1": NotRunnable(
        "two machines with 8 GPUs each; the training command it starts is checked",
        check="python -m litvision.train experiment=digits_cnn trainer=multinode trainer.num_nodes=2 "
        "trainer.devices=8 hydra.run.dir=tmp/run1",
        refusal=GPU_REFUSAL,
    ),
    "make submit EXP=X NODES=2 GPUS=8 PARTITION=gpu TIME=12:00:00 ACCOUNT=myproj QOS=normal CONSTRAINT=a100": NotRunnable(
        "a real SLURM cluster",
        check="make submit EXP=digits_cnn NODES=2 GPUS=8 PARTITION=gpu TIME=12:00:00 ACCOUNT=myproj QOS=normal "
        "CONSTRAINT=a100",
        refusal=SLURM_REFUSAL,
    ),
    'make submit EXP=X NODES=1 GPUS=4 PARTITION=gpu TIME=04:00:00 SBATCH="--mail-type=END --exclusive" '
    'ARGS="scale_lr=linear base_batch_size=256"': NotRunnable(
        "a real SLURM cluster",
        check='make submit EXP=digits_cnn NODES=1 GPUS=4 PARTITION=gpu TIME=04:00:00 SBATCH="--mail-type=END '
        '--exclusive" ARGS="scale_lr=linear base_batch_size=256"',
        refusal=SLURM_REFUSAL,
    ),
    "make submit EXP=digits_cnn GPUS=0 TASKS=2 TIME=00:10:00": NotRunnable(
        "a SLURM cluster (tests/slurm/ runs it on a local one-node cluster)",
        check="make submit EXP=digits_cnn GPUS=0 TASKS=2 TIME=00:10:00",
        refusal=SLURM_REFUSAL,
    ),
    "litvision fit data=png_shapes model=gray_resnet18 name=png_shapes_resnet trainer.max_epochs=1": NotRunnable(
        "needs the four files its section shows: tests/test_add_your_own.py writes them into a scratch copy "
        "of the repository and runs this line there"
    ),
    "wandb login": NotRunnable("W&B's own CLI, online"),
    "wandb sync runs/digits_cnn/<stamp>/wandb/offline-run-*": NotRunnable(
        "W&B's own CLI, online (the offline run it uploads is written by the logger=wandb line above)"
    ),
    "wandb sweep sweeps/digits_cnn.yaml": NotRunnable(
        "W&B's own CLI, online (the file it registers is written and checked by make wandb-sweep above)"
    ),
    "wandb agent <entity>/<project>/<sweep id>": NotRunnable("W&B's own CLI, online"),
    "litvision submit --nodes=1 --gpus=4 -- experiment=digits_cnn": NotRunnable(
        "a real SLURM cluster",
        check="litvision submit --nodes=1 --gpus=4 -- experiment=digits_cnn",
        refusal=SLURM_REFUSAL,
    ),
}

# README commands known to fail, with the reason: run, and expected to fail (strict: one that starts to pass
# fails the test, so the entry is removed).
EXPECTED_BROKEN: dict[str, str] = {}


def test_every_readme_command_is_handled() -> None:
    """A command added to the README or to a page of docs/ or bench/README.md without a RUN or NOT_RUNNABLE
    entry fails here, and so does an entry whose command left them all. Catches: `make list-all` added to a
    bash block of the README or of docs/tracking.md, or `doc_files()` reading the README alone (the entries of
    the torchrun and `make submit` lines of docs/scaling.md then look stale)."""
    commands = set(readme_commands())
    handled = set(RUN) | set(NOT_RUNNABLE)
    assert not commands - handled, f"README commands neither run nor listed: {sorted(commands - handled)}"
    assert not handled - commands, (
        f"entries for commands no longer in the README: {sorted(handled - commands)}"
    )
    assert set(EXPECTED_BROKEN) <= set(RUN)
    groups = {r.group for r in RUN.values()}
    assert groups == set(GROUPS), f"groups without a test: {groups - set(GROUPS)}"


def test_readme_parser() -> None:
    """Comments, continuations and quotes (break: drop the continuation join, the torchrun line splits)."""
    text = 'x\n```bash\nmake a ARGS="b # c"  # comment\n# only a comment\ncmd --x \\\n  -y  # z\n```\n```yaml\nk: v\n```\n'
    assert readme_commands(text) == ['make a ARGS="b # c"', "cmd --x -y"]


# ------------------------------------------------------------------ running a command


class Sandbox:
    """A project folder of its own: the checkout's code and configs linked, runs/, data/, sweeps/ its own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for name in ("Makefile", "pyproject.toml", "configs", "experiments", "src", "bench", "notebooks"):
            (root / name).symlink_to(ROOT / name)
        shutil.copytree(ROOT / "sweeps", root / "sweeps")
        (root / "tmp").mkdir()
        self.slurm_path = unreachable_slurm_path(root / "tmp")
        self.values: dict[str, str] = {}
        self.fixtures: dict[str, list[str]] = {}

    def env(self, extra: dict | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SLURM_", "WANDB_"))}
        env.update(
            PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            LITVISION_ROOT=str(self.root),
            PYTHONUNBUFFERED="1",
            COLUMNS="200",
            WANDB_MODE="offline",
            WANDB_SILENT="true",
            # SLURM's clients installed, no controller answering, whatever this machine has (and even where
            # tests/slurm/ has a cluster running): the same refusals on every machine.
            PATH=self.slurm_path,
        )
        return {**env, **(extra or {})}

    def fixture(self, name: str) -> list[str]:
        """The overrides pointing the data config at a fixture in that dataset's own format (written once)."""
        if name not in self.fixtures:
            from litvision.data.fixtures import fixture_maker

            self.fixtures[name] = fixture_maker(name)(self.root / "fixtures" / name)
        return self.fixtures[name]

    def fill(self, command: str) -> str:
        for key, value in sorted(self.values.items(), key=lambda kv: -len(kv[0])):
            command = command.replace(key, value)
        assert "<" not in command.replace("<(", ""), f"unfilled placeholder in {command}"
        return command

    def argv(self, command: str, extra: list[str]) -> tuple[list[str], dict]:
        """argv and environment of a README command line, with `extra` overrides appended."""
        words = shlex.split(command)
        env = {}
        while re.fullmatch(r"[A-Z_]+=.*", words[0]):
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        head, rest = words[0], words[1:]
        if head == "make":
            if extra:
                args = [w for w in rest if w.startswith("ARGS=")]
                if args:
                    rest[rest.index(args[0])] = f"{args[0]} {' '.join(extra)}"
                else:
                    rest.append(f"ARGS={' '.join(extra)}")
            return ["make", "--no-print-directory", f"PYTHON={sys.executable}", *rest], env
        if head == "litvision":
            script = Path(sys.executable).parent / "litvision"
            start = [str(script)] if script.is_file() else [sys.executable, "-m", "litvision"]
            return [*start, *rest, *extra], env
        if head == "python" and rest[:1] == ["-m"]:
            return [sys.executable, *rest, *extra], env
        raise AssertionError(f"no way to run {command!r}")

    def run(self, command: str, extra: list[str] = (), env: dict | None = None, timeout: float = 600):
        argv, line_env = self.argv(self.fill(command), list(extra))
        return subprocess.run(
            argv,
            cwd=self.root,
            env=self.env({**line_env, **(env or {})}),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def run_entry(box: Sandbox, key: str) -> None:
    """Run every variant of the README command `key`; each must succeed and leave its expected files."""
    entry = RUN[key]
    tiny = (TINY_SWEEP if key.startswith(("make sweep", "litvision sweep")) else TINY) if entry.tiny else []
    data = [*(box.fixture(entry.data) if entry.data else []), *entry.extra]
    failures = []
    for command in entry.variants or (key,):
        trains = re.match(r"(make (train|sweep)|litvision (fit|sweep|test))\b", command)
        proc = box.run(command, [*(tiny if trains else []), *data], entry.env)
        if proc.returncode != 0:
            failures.append(
                f"{command} -> exit {proc.returncode}\n{proc.stdout[-1500:]}\n{proc.stderr[-2500:]}"
            )
    missing = [g for g in entry.expect if not list(box.root.glob(g))]
    for pattern, text in entry.expect_text.items():
        found = sorted(box.root.glob(pattern), key=lambda f: f.stat().st_mtime)
        if not found or text not in found[-1].read_text():
            missing.append(f"{pattern} holding {text!r}")
    if key in EXPECTED_BROKEN:
        if failures or missing:
            pytest.xfail(f"{EXPECTED_BROKEN[key]}: {(failures or missing)[0][:300]}")
        pytest.fail(f"{key!r} works now: remove it from EXPECTED_BROKEN ({EXPECTED_BROKEN[key]})")
    assert not failures, "\n\n".join(failures)
    assert not missing, f"{key}: nothing matches {missing} in the sandbox"


def keys_of(group: str) -> list[str]:
    return [k for k, r in RUN.items() if r.group == group]


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    from litvision.data.fixtures.classification import class_images, write_image

    box = Sandbox(tmp_path_factory.mktemp("readme"))
    # photos/: what a user would point predict at, RGB photos of assorted sizes.
    for i, (h, w) in enumerate([(64, 64), (48, 80), (90, 60)]):
        write_image(
            box.root / "photos" / f"photo{i}.jpg",
            class_images(__import__("numpy").asarray([i]), h, w, 3, i)[0],
        )
    return box


def _stamp(box: Sandbox, exp: str) -> str:
    """The first finished training run of `exp` in the sandbox, as the README's runs/<exp>/<stamp>."""
    runs = sorted(p.parent for p in (box.root / "runs" / exp).glob("*/summary.json"))
    assert runs, f"no finished run of {exp}"
    return str(runs[0].relative_to(box.root))


# ------------------------------------------------------------------ the groups


@pytest.mark.slow
@pytest.mark.parametrize("key", keys_of("digits"))
def test_digits(box: Sandbox, key: str) -> None:
    """The default experiment's commands (break: rename `make predict`'s INPUT variable in the Makefile)."""
    if "runs/digits_cnn/<stamp>" not in box.values:  # `make train` first: its run is the README's <stamp>
        run_entry(box, "make train")
        box.values["runs/digits_cnn/<stamp>"] = _stamp(box, "digits_cnn")
        box.values["<month>"] = Path(box.values["runs/digits_cnn/<stamp>"]).name[:7]  # 2026-11
    if key != "make train":
        run_entry(box, key)


GRID = 'make sweep ARGS="model.optimizer.lr=1e-3,3e-2 seed=1,2,3"'


@pytest.mark.slow
@pytest.mark.parametrize("key", keys_of("sweeps"))
def test_sweeps(box: Sandbox, key: str) -> None:
    """Grid and Optuna sweeps, then `make compare` on a sweep (break: drop `sweep:` from configs/hydra)."""
    multirun = box.root / "runs" / "digits_cnn" / "multirun"
    folder = "runs/digits_cnn/multirun/sweep-<id>"
    if key.startswith("make compare"):  # the comparisons are of the grid sweep of 2 lrs x 3 seeds
        if "<grid>" not in box.values:
            test_sweeps(box, GRID)
        box.values[folder] = box.values["<grid>"]
    elif "sweep-<id>" in key:  # resume=: the Optuna sweep run above, whose 3 trials are all finished
        [optuna] = [p.parent for p in multirun.glob("*/optimization_results.yaml")]
        box.values[folder] = str(optuna.relative_to(box.root))
        finished = {p: p.read_bytes() for p in optuna.glob("*/summary.json")}
    before = set(multirun.glob("*"))
    run_entry(box, key)
    if key == GRID:
        [sweep] = set(multirun.glob("*")) - before
        box.values["<grid>"] = str(sweep.relative_to(box.root))
        assert len(list(sweep.glob("*/summary.json"))) == 6
    elif "sweep-<id>" in key and not key.startswith("make compare"):
        assert set(multirun.glob("*")) == before, "a resumed sweep made a new folder"
        assert {p: p.read_bytes() for p in optuna.glob("*/summary.json")} == finished


@pytest.mark.slow
@pytest.mark.parametrize("key", keys_of("transfer"))
def test_transfer(box: Sandbox, key: str) -> None:
    """Transfer learning on flower_photos (break: drop `shape_match` from models/weights.py)."""
    if "<resnet50.pth>" not in box.values:
        import torch
        import torchvision

        path = box.root / "tmp" / "resnet50.pth"
        torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
        box.values["<resnet50.pth>"] = str(path)
    if key == "make compare EXP=resnet50_flowers" and not (box.root / "runs" / "resnet50_flowers").is_dir():
        run_entry(box, 'make train EXP=resnet50_flowers ARGS="model.freeze=backbone"')
    run_entry(box, key)


@pytest.mark.slow
@pytest.mark.parametrize("key", keys_of("extras"))
def test_extras(box: Sandbox, key: str) -> None:
    """EMA, MixUp/CutMix, class weights on an image folder (break: rename data.mixup_alpha)."""
    run_entry(box, key)


@pytest.mark.slow
@pytest.mark.parametrize("key", keys_of("detection"))
def test_detection(box: Sandbox, key: str) -> None:
    """Detection training, predict and the dataset tools (break: rename the convert sub-command voc2yolo)."""
    if "<voc>" not in box.values:
        from litvision.data.fixtures.detection import write_coco, write_voc

        box.values["<voc>"] = str(write_voc(box.root / "fixtures" / "voc_convert"))
        box.values["<coco>"] = str(write_coco(box.root / "fixtures" / "coco_convert"))
    if "runs/yolov1_shapes/<stamp>" not in box.values and "CKPT=runs/yolov1_shapes" in key:
        if not list((box.root / "runs" / "yolov1_shapes").glob("*/summary.json")):
            run_entry(box, "make train EXP=yolov1_shapes")
        box.values["runs/yolov1_shapes/<stamp>"] = _stamp(box, "yolov1_shapes")
    run_entry(box, key)


GROUPS = {"digits": test_digits, "sweeps": test_sweeps, "transfer": test_transfer, "extras": test_extras,
          "detection": test_detection}  # fmt: skip


# ------------------------------------------------------------------ what cannot run here


@pytest.mark.parametrize("key", [k for k, n in NOT_RUNNABLE.items() if n.check or n.composes or n.dry_run])
def test_not_runnable_commands_are_refused(box: Sandbox, key: str) -> None:
    """Each composes and is refused with its one documented line, before any run folder exists (break: let
    `make submit` skip its sinfo check, the job is queued instead)."""
    entry = NOT_RUNNABLE[key]
    if entry.dry_run:
        argv, _ = box.argv(key, [])
        proc = subprocess.run(
            [argv[0], "-n", *argv[1:]], cwd=box.root, env=box.env(), capture_output=True, text=True
        )
        assert proc.returncode == 0 and entry.dry_run in proc.stdout, proc.stdout + proc.stderr
        return
    if entry.composes:
        proc = box.run(key, ["--cfg"])
        assert proc.returncode == 0 and entry.composes in proc.stdout, (
            proc.stdout[-2000:] + proc.stderr[-2000:]
        )
        return
    assert_refused(box, entry.check, entry.refusal)


def assert_refused(box: Sandbox, command: str, refusal: str, env: dict | None = None) -> None:
    """`command` exits 2 with exactly one `error:` line matching `refusal`, and leaves no run folder."""
    runs_before = sorted((box.root / "runs").rglob("config.yaml"))
    proc = box.run(command, env=env)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    # make reports any failing recipe with its own exit code 2; litvision's refusals exit with 2.
    assert proc.returncode == 2, proc.stdout[-1000:] + proc.stderr[-2000:]
    assert len(errors) == 1 and re.search(refusal, errors[0]), proc.stdout[-1000:] + proc.stderr[-2000:]
    assert sorted((box.root / "runs").rglob("config.yaml")) == runs_before


@pytest.mark.parametrize("key", [k for k, n in NOT_RUNNABLE.items() if n.refusal == SLURM_REFUSAL])
def test_submit_commands_without_slurm_say_where_they_run(box: Sandbox, key: str) -> None:
    """The README's submit lines on a machine with no SLURM installed (its clients taken off PATH, whatever
    this machine has): the "not found" line, not the unreachable-controller one. Catches: the
    `shutil.which` check dropped (sinfo is then run and fails with a traceback) or the two refusals
    swapped."""
    no_slurm = path_without(SLURM_COMMANDS, box.root / "tmp" / "no-slurm")
    assert_refused(box, NOT_RUNNABLE[key].check, SLURM_MISSING, env={"PATH": no_slurm})
