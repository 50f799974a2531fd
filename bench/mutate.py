"""Mutation testing of the modules whose bugs cost users most: `make mutate` (not part of CI).

    python -m bench.mutate                 # every module below (hours on the 2-core VM: run it in parts)
    python -m bench.mutate splits optim    # some of them (names are the keys of MODULES; bench/README.md)

mutmut 3 (PyPI) rewrites one module at a time into many "mutants" (a `<` turned `<=`, a constant
changed, an argument dropped, ...) and runs, for each mutant, only the tests of that module's fast
subset that execute the mutated function; a mutant no test fails on "survives". Each module runs in
its own scratch copy of the repository (.mutate/<module>/) with its own `[tool.mutmut]` section, so
the subsets stay small and a run never touches the working tree.

Results go to bench/results/mutation.json: per module the mutants run, killed and survived, each
survivor with its location and diff, and the survivors judged equivalent (no behaviour change a user
could see) listed with the reason from EQUIVALENT. The target is survivors (equivalents excluded)
<= 10% of the mutants run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / ".mutate"
RESULT = ROOT / "bench" / "results" / "mutation.json"

# module key -> (source file under src/litvision, its test subset). The subset names the in-process
# tests and the CLI tests that exercise the module: a CLI test runs `python -m litvision` in a child
# process, which mutmut's per-test coverage cannot see, so CLI_TESTS below says which tests those are
# and the plugin appended to the scratch conftest (CLI_PLUGIN) credits them with every function of
# the module. Without them a mutant only the CLI path reaches (runner's x_execute__mutmut_80, a seed
# line printed before a late refusal) survived as "no tests".
_LIFECYCLE_CLI = ["tests/test_lifecycle.py", "tests/test_cli.py"]
MODULES: dict[str, tuple[str, list[str]]] = {
    "splits": (
        "data/pipeline/splits.py",
        ["tests/test_optim_and_splits.py", "tests/test_data_splits_samplers.py", "tests/test_data_checks.py"],
    ),
    "samplers": ("data/pipeline/samplers.py", ["tests/test_data_splits_samplers.py"]),
    "duplicates": (
        "data/pipeline/duplicates.py",
        ["tests/test_duplicates_unit.py", "tests/test_data_checks.py"],
    ),
    "device_cache": ("data/pipeline/device_cache.py", ["tests/test_device_cache.py"]),
    "mixing": ("data/transforms/mixing.py", ["tests/test_mixing.py"]),
    "optim": (
        "tasks/optim.py",
        [
            "tests/test_optim_and_splits.py",
            "tests/test_optim_schedules.py",
            "tests/test_scale.py::test_linear_lr_scaling_follows_the_global_batch",
            "tests/test_scale.py::test_scaled_lr_reaches_every_group_and_the_config_is_not_mutated",
        ],
    ),
    "ema": ("tasks/ema.py", ["tests/test_ema_callback.py", "tests/test_ema.py"]),
    "tta": ("tasks/tta.py", ["tests/test_tta.py"]),
    "class_weights": (
        "tasks/class_weights.py",
        # The CLI refusals only: the every-experiment case composes configs and reads no weights.
        [
            "tests/test_class_weights.py",
            "tests/test_training_options_cli.py::test_bad_option_is_one_line_and_writes_nothing",
        ],
    ),
    "task_options": (
        "tasks/options.py",
        [
            "tests/test_class_weights.py",
            "tests/test_ema.py",
            "tests/test_mixing.py",
            "tests/test_training_options.py",
            "tests/test_training_options_cli.py",
        ],
    ),
    "finetune": (
        "tasks/finetune.py",
        ["tests/test_finetune_unit.py", "tests/test_transfer.py", "tests/test_training_mechanics.py"],
    ),
    "restore": (
        "tasks/restore.py",
        [
            "tests/test_predict.py",
            "tests/test_models_legacy_checkpoint.py",
            "tests/test_detection_category_ids.py",
        ],
    ),
    "task_classification": (
        "tasks/classification.py",
        [
            "tests/test_data_classification.py",
            "tests/test_mixing.py",
            "tests/test_tta.py",
            "tests/test_predict.py",
        ],
    ),
    "task_detection": (
        "tasks/detection.py",
        ["tests/test_data_detection.py", "tests/test_detection_readable.py"],
    ),
    "detection_metrics": (
        "metrics/detection.py",
        ["tests/test_detection_map.py", "tests/test_detection_metric_edges.py"],
    ),
    "detection_report": (
        "metrics/detection_report.py",
        ["tests/test_detection_report.py", "tests/test_detection_real_outputs.py"],
    ),
    "checkpoint_io": (
        "utils/checkpoint_io.py",
        [
            "tests/test_checkpoint_io_edges.py",
            "tests/test_checkpoint_faults.py",
            "tests/test_scale.py::test_atomic_checkpoint_write_keeps_the_old_file_when_saving_fails",
        ],
    ),
    "preemption": ("callbacks/preemption.py", ["tests/test_preemption_inprocess.py"]),
    "last_checkpoint": (
        "callbacks/checkpoint.py",
        ["tests/test_last_checkpoint.py", "tests/test_checkpoint_faults.py"],
    ),
    "early_stopping": ("callbacks/early_stopping.py", ["tests/test_extend_runs.py"]),
    "finetuning_callback": (
        "callbacks/finetuning.py",
        ["tests/test_training_mechanics.py", "tests/test_transfer.py"],
    ),
    "model_summary": ("callbacks/model_summary.py", ["tests/test_console.py", "tests/test_progress_bar.py"]),
    "performance": ("callbacks/performance.py", ["tests/test_scale.py"]),
    "progress_bar": ("callbacks/progress_bar.py", ["tests/test_progress_bar.py", "tests/test_console.py"]),
    "sample_grid": ("callbacks/sample_grid.py", ["tests/test_data_sample_grid.py"]),
    "runner": ("lifecycle/runner.py", ["tests/test_lifecycle_inprocess.py", *_LIFECYCLE_CLI]),
    "run_folder": ("lifecycle/run_folder.py", ["tests/test_lifecycle_inprocess.py", *_LIFECYCLE_CLI]),
    "resume": ("lifecycle/resume.py", ["tests/test_lifecycle_inprocess.py", *_LIFECYCLE_CLI]),
    "checks": (
        "lifecycle/checks.py",
        ["tests/test_data_checks.py", "tests/test_bad_values_cli.py", *_LIFECYCLE_CLI],
    ),
    "session": ("lifecycle/session.py", ["tests/test_lifecycle_inprocess.py", *_LIFECYCLE_CLI]),
    "sweeps": ("lifecycle/sweeps.py", ["tests/test_sweep_resume.py"]),
    "optuna_study": ("lifecycle/optuna_study.py", ["tests/test_sweep_resume.py"]),
    "export": ("deploy/export.py", ["tests/test_export.py"]),
    "parity": ("deploy/parity.py", ["tests/test_export.py"]),
    "aggregate": ("aggregate.py", ["tests/test_compare_groups.py", "tests/test_compare_nan.py"]),
    "compare": (
        "compare.py",
        ["tests/test_compare_groups.py", "tests/test_compare_nan.py", "tests/test_compare_readable.py"],
    ),
    "added_keys": ("added_keys.py", ["tests/test_cli.py"]),
}

# Test files (or node ids) of the subsets above that run the CLI in a child process. Kept as one
# list: a file is a CLI test whichever module's subset names it.
CLI_TESTS: list[str] = [
    "tests/test_bad_values_cli.py",
    "tests/test_cli.py",
    "tests/test_compare_groups.py",
    "tests/test_compare_nan.py",
    "tests/test_compare_readable.py",
    "tests/test_checkpoint_faults.py",
    "tests/test_console.py",
    "tests/test_device_cache.py",
    "tests/test_ema.py",
    "tests/test_export.py",
    "tests/test_extend_runs.py",
    "tests/test_last_checkpoint.py",
    "tests/test_lifecycle.py",
    "tests/test_progress_bar.py",
    "tests/test_scale.py",
    "tests/test_sweep_resume.py",
    "tests/test_training_options_cli.py",
]

# Survivors that change no behaviour a user or a caller can observe, keyed by mutmut's mutant name,
# with the reason. A key that no longer names a survivor (the code moved) is reported as stale.
EQUIVALENT: dict[str, str] = {
    "litvision.data.transforms.mixing.x_check_mixing__mutmut_1": (
        "check_mixing's default mixup_alpha 1.0 instead of 0.0: every caller passes all four values, and 1.0 "
        "is valid, so check_mixing() passes either way"
    ),
    "litvision.data.transforms.mixing.x_check_mixing__mutmut_2": (
        "the same for cutmix_alpha's default (1.0 is a valid alpha)"
    ),
    "litvision.data.transforms.mixing.x_check_mixing__mutmut_4": (
        "the same for random_erasing's default (1.0 is a valid probability)"
    ),
    "litvision.data.transforms.mixing.xǁBatchMixingǁ_erase__mutmut_6": (
        "RandomErasing without value=0: torchvision's default value is 0 too"
    ),
    "litvision.data.transforms.mixing.xǁBatchMixingǁ__call____mutmut_14": (
        "rand() <= mix_prob instead of <: a continuous draw equals mix_prob with probability 0"
    ),
    "litvision.tasks.class_weights.x_training_labels__mutmut_34": (
        "np.asarray without dtype=int64: integer labels stay an integer array, which bincount counts the same"
    ),
    "litvision.tasks.class_weights.x_training_labels__mutmut_36": "the same, the dtype argument dropped",
    "litvision.tasks.class_weights.x_training_labels__mutmut_37": (
        "labels.cpu() skipped: np.asarray reads a CPU tensor the same; a Dataset's labels are never on a GPU "
        "(batches move at transfer)"
    ),
    "litvision.tasks.class_weights.x_training_labels__mutmut_39": "the same, .cpu() skipped",
    "litvision.tasks.class_weights.x_training_labels__mutmut_43": "the same, .cpu() skipped",
    "litvision.tasks.class_weights.x_training_labels__mutmut_44": "the same, .cpu() skipped",
    "litvision.tasks.class_weights.x_inverse_frequency__mutmut_19": (
        "astype(None) is float64, as astype(float) is"
    ),
    "litvision.tasks.class_weights.x_resolve_class_weights__mutmut_50": (
        "bincount without minlength in the reported counts: a class with no image is refused just before, "
        "so every class is present and the lengths agree"
    ),
    "litvision.tasks.ema.xǁEMAǁ__init____mutmut_5": (
        "drops use_buffers=True: Lightning's EMAWeightAveraging defaults use_buffers to True (the BatchNorm "
        "statistics are still averaged; tests/test_ema_callback.py checks them)"
    ),
    "litvision.tasks.ema.xǁEMAǁon_load_checkpoint__mutmut_2": (
        "passes trainer=None to WeightAveraging.on_load_checkpoint, which (Lightning 2.6) reads only "
        "pl_module and checkpoint"
    ),
    **{
        f"litvision.callbacks.sample_grid.x_unnormalize__mutmut_{n}": (
            "mean/std viewed as (C, 1, 1) instead of (1, C, 1, 1): broadcasting against the (N, C, H, W) "
            "images gives the same (1, C, 1, 1) shape"
        )
        for n in (17, 35)
    },
    **{
        f"litvision.callbacks.sample_grid.x_unnormalize__mutmut_{n}": (
            "torch.tensor(mean/std) without dtype=images.dtype: the images were made float32 by .float() "
            "just before, and a tensor of Python floats is float32 (litvision never changes torch's "
            "default dtype)"
        )
        for n in (22, 24, 40, 42)
    },
    "litvision.callbacks.sample_grid.x_sample_grid_figure__mutmut_32": (
        'ax.axis("OFF"): matplotlib lower-cases the string, the same as "off"'
    ),
    **{
        f"litvision.callbacks.sample_grid.x_sample_grid_figure__mutmut_{n}": (
            "zip(..., strict=None) / without strict: both are the original strict=False"
        )
        for n in (36, 40)
    },
    "litvision.callbacks.sample_grid.x_sample_grid_figure__mutmut_25": (
        "fig.subplots(squeeze=None): matplotlib tests `if squeeze`, and None is falsy like the original False"
    ),
    "litvision.callbacks.sample_grid.xǁSampleGridǁon_train_batch_start__mutmut_30": (
        "getattr(trainer, 'datamodule') without a default: a Lightning Trainer always has the property "
        "(None when fit got no DataModule)"
    ),
    "litvision.callbacks.sample_grid.xǁSampleGridǁ__init____mutmut_8": (
        "logged = None instead of False: only its truth is read (`if self.logged`), and None is falsy"
    ),
    **{
        f"litvision.data.pipeline.duplicates.x_content_hash__mutmut_{n}": (
            "a torch tensor handed to np.ascontiguousarray without .numpy(): numpy converts a CPU tensor "
            "through __array__ to the same array (tests/test_duplicates_unit.py hashes both forms)"
        )
        for n in (3, 5, 9, 10)
    },
    "litvision.data.pipeline.duplicates.x_content_hash__mutmut_13": (
        "a 17-byte digest instead of 16: hashes are only compared with each other (and cached per file "
        "under the same code), never read as numbers"
    ),
    "litvision.data.pipeline.duplicates.x_content_hash__mutmut_20": (
        "memoryview cast to signed bytes ('b') instead of unsigned ('B'): the hash reads the same bytes"
    ),
    **{
        f"litvision.data.pipeline.duplicates.x_dhash_batch__mutmut_{n}": (
            "sum of a uint64 array without dtype=uint64: numpy sums uint64 as uint64 already"
        )
        for n in (26, 28)
    },
    **{
        f"litvision.data.pipeline.duplicates.xǁ_Splitǁ__init____mutmut_{n}": (
            "another initial value of exact/near/valid: every hashing path (_hash_arrays, _hash_splits, "
            "_hash_files) assigns exact, and near/valid whenever near is on, before anything reads them"
        )
        for n in (3, 4, 5)
    },
    "litvision.data.pipeline.duplicates.x__hash_arrays__mutmut_12": (
        "shape[2:] instead of shape[1:] in the in-memory key: two rows of the same byte length with the same "
        "H and W have the same channel count, so the key tells the same images apart"
    ),
    "litvision.data.pipeline.duplicates.x__hash_arrays__mutmut_14": (
        "rows of exactly 64 KiB keyed by their digest instead of their bytes: both keys are equal exactly "
        "when the bytes are (barring a 128-bit hash collision)"
    ),
    **{
        f"litvision.data.pipeline.duplicates.x__near_matches__mutmut_{n}": (
            "an internal assert relaxed to `or`: near and valid are both set whenever this runs"
        )
        for n in (1, 4)
    },
    "litvision.data.pipeline.duplicates.x__near_matches__mutmut_10": (
        "blocks of 1025 instead of 1024 rows: the block size only splits the same distance matrix "
        "(start and slice use the same block)"
    ),
    "litvision.data.pipeline.duplicates.x__near_matches__mutmut_31": (
        "`<=` lets an image pair with itself within a split: it is then dropped by the `not "
        "pixel-identical` test (a.exact[i] == b.exact[i]; two unreadable Nones are equal too)"
    ),
    **{
        f"litvision.data.pipeline.duplicates.x__near_matches__mutmut_{n}": (
            "zip(rows, cols, strict=None/False/omitted): np.nonzero returns index arrays of one length"
        )
        for n in (42, 45, 46)
    },
    "litvision.data.pipeline.duplicates.x_find_duplicates__mutmut_20": (
        "99 -> 100 for split names outside train/val/test: all of them get the same rank, then sort by name"
    ),
    "litvision.data.pipeline.duplicates.x_find_duplicates__mutmut_84": (
        "_near_matches(a, b, None, ...) across splits: None is falsy, the same as the original False"
    ),
    **{
        f"litvision.data.pipeline.duplicates.x__hash_files__mutmut_{n}": (
            "the dtype of the near/valid arrays of a file split left to numpy: a list of Python ints that "
            "fit int64 is int64, a list of bools is bool"
        )
        for n in (47, 49, 58, 60)
    },
    "litvision.data.pipeline.duplicates.x__hash_files__mutmut_55": (
        "an unreadable file's placeholder dHash 1 instead of 0: valid=False masks it out of every match"
    ),
    **{
        f"litvision.data.pipeline.duplicates.x__hash_splits__mutmut_{n}": (
            "the valid mask of images read one by one without dtype=bool: a list of bools is a bool array"
        )
        for n in (41, 43)
    },
    "litvision.data.pipeline.duplicates.x__hash_splits__mutmut_27": (
        "an unreadable image's placeholder dHash 1 instead of 0: valid=False masks it out of every match"
    ),
    **{
        f"litvision.metrics.detection_report.{name}": "zip(..., strict=None/False/omitted): the zipped sequences have one length here"
        for name in (
            *(f"x__coco_datasets__mutmut_{n}" for n in (5, 8, 9, 60, 65, 66, 112, 129)),
            *(f"x_detection_report__mutmut_{n}" for n in (98, 103, 110)),
            *(f"x_metric_states__mutmut_{n}" for n in (29, 33, 34, 49, 55)),
        )
    },
    **{
        f"litvision.metrics.detection_report.x_{fig}_curve_figure__mutmut_{n}": 'color="BLACK": matplotlib reads colour names case-insensitively'
        for fig, n in (("pr", 33), ("f1", 31))
    },
    **{
        f"litvision.metrics.detection_report.x_detection_report__mutmut_{n}": (
            "np.asarray without dtype of a list of Python floats (scores) or bools (tp): numpy gives float64 "
            "and bool, the dtypes asked for"
        )
        for n in (130, 132, 143, 145, 147, 149)
    },
    **{
        f"litvision.metrics.detection_report.x_detection_report__mutmut_{n}": "np.zeros(0) without dtype: an empty array, never read"
        for n in (72, 74)
    },
    **{
        f"litvision.metrics.detection_report.x__coco_datasets__mutmut_{n}": (
            "another area for an object or a detection in the COCO data of the F1/confusion pass (the given "
            "area ignored, >= or > 1 for > 0, the box's area miscomputed): that pass reads only COCOeval's "
            "area range 'all' ([0, 1e10]), which every area of a box with x2 > x1 and y2 > y1 lies in, so no "
            "ignore flag changes (AP and the PR curves come from the torchmetrics evaluation)"
        )
        for n in (43, 44, 45, 46, 48, 85, 90, 91, 92, 93, 94, 148, 149, 150)
    },
    **{
        f"litvision.metrics.detection_report.x__coco_datasets__mutmut_{n}": (
            "object or detection ids counted from 2: still unique and non-zero (COCOeval reads id 0 as no match)"
        )
        for n in (71, 134)
    },
    **{
        f"litvision.metrics.detection_report.x__coco_datasets__mutmut_{n}": "the categories' names: COCOeval never reads them"
        for n in (159, 160, 161)
    },
    **{
        f"litvision.metrics.detection_report.x__coco_eval__mutmut_{n}": (
            "the detections' COCO object without images or categories: createIndex skips a missing key and "
            "COCOeval takes the image and category ids from the ground truth"
        )
        for n in (6, 7, 10, 11)
    },
    **{
        name: (
            "the IoU-0.5 index computed as argmin(None) (0) or argmin(|thr + 0.5|) (the smallest threshold): "
            "index 0 either way, IoU 0.5"
        )
        for name in (
            "litvision.metrics.detection_report.x__per_class_ap__mutmut_29",
            "litvision.metrics.detection_report.x__per_class_ap__mutmut_31",
            "litvision.metrics.detection_report.x_detection_report__mutmut_28",
            "litvision.metrics.detection_report.x_detection_report__mutmut_30",
        )
    },
    **{
        f"litvision.metrics.detection_report.x__per_class_ap__mutmut_{n}": (
            "`>= -1` / `> -2` when averaging a class's precision: the branch runs only for a class with "
            "objects, whose COCOeval precision has no -1 entry (-1 marks a class without objects)"
        )
        for n in (55, 57, 60, 62)
    },
    "litvision.metrics.detection_report.x__per_class_ap__mutmut_65": (
        "clip(None, None) of a class's PR curve: for a class with objects COCOeval's precision is never negative"
    ),
    "litvision.metrics.detection_report.x__coco_eval__mutmut_1": (
        "redirect_stdout(None): print() with sys.stdout None writes nothing, so pycocotools stays as quiet "
        "(tests/test_detection_report.py checks that nothing is printed)"
    ),
    "litvision.metrics.detection_report.xǁDetectionReportǁf1_curves__mutmut_19": (
        "`p + r >= 0` for `> 0`: where p + r is 0 the formula gives 2 * 0 / 1e-12 = 0, the fallback value"
    ),
    **{
        f"litvision.metrics.detection_report.x_detection_report__mutmut_{n}": (
            "argsort without kind='mergesort' (or spelled 'MERGESORT', which numpy reads by its first letter): "
            "only the order among detections of equal score changes, and a confidence keeps all of those or "
            "none (searchsorted side='right'), so no precision, recall or F1 changes"
        )
        for n in (125, 127, 134)
    },
    "litvision.metrics.detection_report.x_detection_report__mutmut_56": "`- 0 * n_img` for `+ 0 * n_img`: the same index",
    **{
        f"litvision.tasks.finetune.x_sync_batchnorm_modes__mutmut_{n}": (
            "a BatchNorm's parameters with recurse=None (falsy, as False) or True: a BatchNorm has no child "
            "modules, so the list is the same"
        )
        for n in (7, 8)
    },
    **{
        f"litvision.tasks.finetune.x_freeze__mutmut_{n}": (
            "split('.') without maxsplit, or with 2, in the top-level module names: only element [0] is "
            "used, and it is the same"
        )
        for n in (20, 23)
    },
    "litvision.tasks.finetune.x_layer_decay_param_groups__mutmut_14": (
        "group_matcher(coarse=None): timm's matchers test `if coarse`, and None is falsy like the original False"
    ),
    "litvision.data.pipeline.samplers.xǁEpochWeightedSamplerǁ__init____mutmut_9": (
        "drops replacement=True: WeightedRandomSampler's replacement already defaults to True"
    ),
    "litvision.lifecycle.resume.x_replayable__mutmut_5": (
        "lstrip('XX+~XX') also strips a leading 'X': no override of a config key or launch option starts with "
        "an upper-case X"
    ),
    "litvision.lifecycle.resume.x_check_resume_changes__mutmut_6": (
        "to_container(..., resolve=None): None is falsy, the same as the original resolve=False"
    ),
    "litvision.lifecycle.resume.x_check_resume_changes__mutmut_8": (
        "to_container(...) without resolve: its default is False, the same as the original"
    ),
    "litvision.lifecycle.resume.x_check_resume_changes__mutmut_10": (
        "resolving the saved config.yaml: it is written resolved (utils.run.save_config), so it holds no "
        "interpolation to resolve"
    ),
    "litvision.lifecycle.run_folder.x_original_overrides__mutmut_11": (
        "`if data or True`: an empty overrides.yaml loads as an empty config, which iterates to [] as well"
    ),
    "litvision.lifecycle.run_folder.xǁRunLockǁacquire__mutmut_22": (
        "reads 201 instead of 200 bytes of the holder line; the line litvision writes is ~45 bytes"
    ),
    "litvision.lifecycle.run_folder.xǁRunLockǁacquire__mutmut_35": (
        "ftruncate(fd, 1) instead of 0, then writing the (never empty) holder line from offset 0 "
        "overwrites that byte: the same file"
    ),
    "litvision.lifecycle.run_folder.x_create__mutmut_2": (
        "mkdir(exist_ok=None): None is falsy, the same as the original exist_ok=False"
    ),
    "litvision.lifecycle.run_folder.x_create__mutmut_4": "mkdir() without exist_ok: its default is False",
    "litvision.metrics.detection.x_make_map_metric__mutmut_8": (
        "drops box_format='xyxy': torchmetrics' MeanAveragePrecision defaults to xyxy"
    ),
    "litvision.metrics.detection.x_make_map_metric__mutmut_9": (
        "drops iou_type='bbox': torchmetrics' MeanAveragePrecision defaults to bbox"
    ),
    "litvision.metrics.detection.x_make_iou_metric__mutmut_5": (
        "drops box_format='xyxy': torchmetrics' IntersectionOverUnion defaults to xyxy"
    ),
    "litvision.metrics.detection.x_make_iou_metric__mutmut_7": (
        "drops respect_labels=True: torchmetrics' IntersectionOverUnion defaults to True"
    ),
    "litvision.utils.checkpoint_io.x__read_umask__mutmut_3": (
        "os.umask(1) instead of os.umask(0) to read the mask: the probe value is put back at once either way"
    ),
    "litvision.lifecycle.runner.x__known_to__mutmut_19": (
        "str(None) for a plain-string defaults item: the only one is `_self_`, which no override names"
    ),
    **{
        f"litvision.lifecycle.runner.x__known_to__mutmut_{n}": (
            "rewrites the 'override ' / 'group/option' forms of the entry config's own defaults list: "
            "eval.yaml and predict.yaml (the configs _known_to reads) have neither"
        )
        for n in (21, 26, 27, 28, 29)
    },
    "litvision.lifecycle.runner.x__known_to__mutmut_36": (
        "split('=') without maxsplit: only element [0], the key, is used, and it is the same"
    ),
    "litvision.lifecycle.runner.x__known_to__mutmut_42": (
        "split('=', 2) instead of split('=', 1): only element [0], the key, is used, and it is the same"
    ),
    "litvision.lifecycle.runner.x__known_to__mutmut_40": (
        "lstrip('XX+~XX') also strips a leading 'X': no config key starts with an upper-case X"
    ),
    **{
        f"litvision.lifecycle.runner.x_execute__mutmut_{n}": (
            "the `config.yaml exists` test in the new/fork/job branch: a new or forked run's folder is "
            "fresh (folders.create refuses one holding files) and a job whose folder has config.yaml is "
            "planned as a resume, so the file never exists there"
        )
        for n in (42, 43)
    },
    **{
        f"litvision.lifecycle.runner.x_execute__mutmut_{n}": (
            "seed_everything's `verbose` only decides whether Lightning logs 'Seed set to N'; the start "
            "panel shows the seed"
        )
        for n in (77, 80, 82)
    },
    **{
        f"litvision.lifecycle.runner.x__configure_logging__mutmut_{n}": (
            "to_container(resolve=None) / without resolve: both are the original resolve=False"
        )
        for n in (6, 8)
    },
    "litvision.lifecycle.runner.x__configure_logging__mutmut_13": (
        "configure_log's verbose_config defaults to False, the value of hydra.verbose in configs/hydra"
    ),
    **{
        name: "softmax(dim=+1) instead of dim=-1: the logits are (N, num_classes), so dim 1 is the last dim"
        for name in (
            "litvision.tasks.tta.x_tta_logits__mutmut_17",
            "litvision.tasks.tta.x_predict_probabilities__mutmut_10",
        )
    },
    "litvision.tasks.optim.x_lr_scale__mutmut_9": (
        "getattr(trainer, 'world_size', None) or 1: a missing world size becomes 1 through `or 1` either way"
    ),
    "litvision.tasks.optim.x_lr_scale__mutmut_22": (
        "getattr(trainer, 'accumulate_grad_batches', None) or 1: a missing value becomes 1 through `or 1` either way"
    ),
    "litvision.tasks.optim.x_configure_optimization__mutmut_6": (
        "getattr(factory, 'keywords', None): the factory is always a functools.partial (the optimizer "
        "config has _partial_: true), which always has .keywords"
    ),
    "litvision.tasks.optim.x_configure_optimization__mutmut_9": (
        "getattr(factory, 'keywords') without a default: the same functools.partial always has .keywords"
    ),
    "litvision.tasks.optim.x_configure_optimization__mutmut_69": (
        "`task.trainer.max_epochs or 2`: in a fit Lightning's max_epochs is never None or 0 here (None "
        "becomes 1000 or -1), so the fallback is never reached"
    ),
}

# What the fast subsets cannot reach here, said once per module instead of explained mutant by mutant.
NOTES: dict[str, str] = {
    "preemption": (
        "Survivors cluster where the fast subset cannot go: the DDP branches (world_size > 1: the "
        "all-reduce of the stop decision, all_gather of RNG states; exercised by the subprocess DDP tests "
        "in tests/test_scale.py), the CUDA RNG branch (no GPU here), and the loader-worker path of "
        "_skip_batches (tests/test_resume_workers.py, marked slow). SLURM requeue: the scontrol path runs the real "
        "(failing, no controller here) scontrol; submitit's own requeue needs a submitit job."
    ),
}

# mutmut's exit codes (mutmut/__init__.py: status_by_exit_code), grouped the way the report counts them.
# A failing test, a timeout or a crash catches the mutant; one no test of the subset executes
# ("no tests", 33) is not caught either, so it counts as a survivor.
KILLED = {1, 3, -24, 24, 152, 255, -11, -9, 36}
SURVIVED = {0, 33}


def _copy_tree(work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache")
    for name in ("src", "tests", "configs", "experiments"):
        shutil.copytree(ROOT / name, work / name, ignore=ignore)


def _config(source: str, tests: list[str]) -> str:
    def toml_list(xs: list[str]) -> str:
        return "[" + ", ".join(json.dumps(x) for x in xs) + "]"

    return "\n".join(
        [
            "",
            "[tool.mutmut]",
            'source_paths = ["src"]',
            f"only_mutate = {toml_list([f'src/litvision/{source}'])}",
            f"pytest_add_cli_args_test_selection = {toml_list(tests)}",
            # -p no:randomly etc. are mutmut's; ours: no cache writes, the project's 900 s timeout off
            # (mutmut times each mutant against the clean run), slow tests stay out of the subsets.
            'pytest_add_cli_args = ["-p", "no:cacheprovider", "-o", "timeout=0", "-m", "not slow"]',
            'also_copy = ["configs", "experiments"]',
            "use_git_change_detection = false",
            "",
        ]
    )


def _results(work: Path, env: dict[str, str]) -> dict[str, int | None]:
    meta = next((work / "mutants").rglob("*.py.meta"))
    return {k: v for k, v in json.loads(meta.read_text())["exit_code_by_key"].items()}


def _diff(work: Path, env: dict[str, str], name: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", name], cwd=work, env=env, capture_output=True, text=True
    ).stdout
    return "\n".join(line for line in out.splitlines()[1:] if not line.startswith(("---", "+++")))


def _location(source: str, name: str) -> str:
    """Where a mutant lives, from mutmut's name for it.

    mutmut 3 names a function's mutants `x_<function>__mutmut_<n>` and a method's
    `xǁ<Class>ǁ<method>__mutmut_<n>`: litvision.lifecycle.run_folder.xǁRunLockǁ__init____mutmut_3 ->
    src/litvision/lifecycle/run_folder.py::RunLock.__init__.
    """
    mangled = name.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[-1]
    method = re.fullmatch(r"xǁ(.+?)ǁ(.+)", mangled)
    qualname = f"{method.group(1)}.{method.group(2)}" if method else mangled.removeprefix("x_")
    return f"src/litvision/{source}::{qualname}"


# Appended to the scratch copy's tests/conftest.py. While mutmut collects which tests reach which
# function ("stats"), a CLI test's child process would run mutmut's trampolines with
# MUTANT_UNDER_TEST=stats and crash reading mutmut's config from the wrong folder; and whatever it
# reached is lost with the child. So the child runs the original code, and the CLI test is credited
# with every function of the mutated module. When a mutant is tested, the child inherits
# MUTANT_UNDER_TEST and runs the mutant, as the in-process tests do.
CLI_PLUGIN = """

# --- added by bench/mutate.py (scratch copy only) ---
import importlib as _mm_importlib
import inspect as _mm_inspect

_MM_MODULE = {module!r}
_MM_CLI = {cli!r}


# The mutated copy must be the code the tests import: mutmut puts mutants/src first on sys.path, but a
# PYTHONPATH or an editable install pointing at another checkout would otherwise make every mutant
# invisible (nothing killed, every mutant "surviving" for the wrong reason, or worse, a run that looks
# fine while testing the original). Refuse to run instead. ROOT is this conftest's copy (mutants/).
_mm_file = Path(_mm_importlib.import_module(_MM_MODULE).__file__).resolve()
if ROOT.resolve() / "src" not in _mm_file.parents or "__mutmut_orig" not in _mm_file.read_text():
    raise RuntimeError(f"bench/mutate.py: the tests import {{_MM_MODULE}} from {{_mm_file}}, not the mutated copy")


def _mm_functions() -> list[str]:
    mod = _mm_importlib.import_module(_MM_MODULE)
    names = [n for n in vars(mod) if n.endswith("__mutmut_orig")]
    for obj in vars(mod).values():
        if _mm_inspect.isclass(obj) and obj.__module__ == _MM_MODULE:
            names += [n for n in vars(obj) if n.endswith("__mutmut_orig")]
    return [f"{{_MM_MODULE}}.{{n.removesuffix('__mutmut_orig')}}" for n in names]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    stats = os.environ.get("MUTANT_UNDER_TEST") == "stats"
    if not stats:
        yield
        return
    os.environ.pop("MUTANT_UNDER_TEST")  # mutmut keeps its own process-local copy
    try:
        yield
    finally:
        os.environ["MUTANT_UNDER_TEST"] = "stats"
        if any(item.nodeid.removeprefix("mutants/").startswith(c) for c in _MM_CLI):
            from mutmut.state import state

            state()._stats.update(_mm_functions())
"""


def _commit() -> str:
    """HEAD, with '+dirty' when the tree differs from it: the code a module's numbers were measured on."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "src", "tests"], cwd=ROOT, capture_output=True, text=True
    )
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def run_module(key: str) -> dict:
    source, tests = MODULES[key]
    work = SCRATCH / key
    commit = _commit()  # the code copied now, whatever the tree becomes while mutmut runs
    _copy_tree(work)
    pyproject = (ROOT / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(pyproject + _config(source, tests))
    module = "litvision." + source.removesuffix(".py").replace("/", ".")
    cli = [t for t in tests if any(t.startswith(c) or c.startswith(t) for c in CLI_TESTS)]
    with (work / "tests" / "conftest.py").open("a") as f:
        f.write(CLI_PLUGIN.format(module=module, cli=cli))
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        # One thread per forked worker: torch's thread pools do not survive fork, and 2 workers share 2 cores.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    env.pop("LITVISION_ROOT", None)  # the tests point it at the scratch copy (tests/conftest.py)
    env.pop("PYTHONPATH", None)
    started = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", str(os.cpu_count() or 2)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = round(time.time() - started, 1)
    (SCRATCH / f"{key}.log").write_text(proc.stdout + proc.stderr)
    try:
        codes = _results(work, env)
    except StopIteration:
        raise SystemExit(f"mutmut produced no results for {key}; see {SCRATCH / f'{key}.log'}") from None
    killed = [n for n, c in codes.items() if c in KILLED]
    survived = [n for n, c in codes.items() if c in SURVIVED]
    not_run = [n for n, c in codes.items() if c not in KILLED | SURVIVED]
    equivalent = [n for n in survived if n in EQUIVALENT]
    real = [n for n in survived if n not in EQUIVALENT]
    ran = len(killed) + len(survived)
    return {
        "source": f"src/litvision/{source}",
        "commit": commit,
        "tests": tests,
        "cli_tests": cli,
        "seconds": seconds,
        "mutants": len(codes),
        "run": ran,
        "killed": len(killed),
        "survived": len(real),
        "equivalent": len(equivalent),
        "not_run": len(not_run),
        "survived_fraction": round(len(real) / ran, 4) if ran else None,
        "survivors": [
            {"mutant": n, "location": _location(source, n), "diff": _diff(work, env, n)} for n in real
        ],
        "equivalents": [
            {
                "mutant": n,
                "location": _location(source, n),
                "why": EQUIVALENT[n],
                "diff": _diff(work, env, n),
            }
            for n in equivalent
        ],
        "not_run_mutants": {n: codes[n] for n in not_run},
        "note": NOTES.get(key, ""),
    }


# The cheap modules first and those whose subsets train many tiny runs last: the results file is
# rewritten after each module, so an interrupted `make mutate` keeps what it finished.
_LAST = ["resume", "run_folder", "session", "checks", "preemption", "optim", "runner"]
ORDER = [k for k in MODULES if k not in _LAST] + _LAST


def _write(report: dict) -> None:
    mods = [m for k, m in report["modules"].items() if k in MODULES]
    ran = sum(m["run"] for m in mods)
    survived = sum(m["survived"] for m in mods)
    report["total"] = {
        "modules": sorted(k for k in report["modules"] if k in MODULES),
        "run": ran,
        "killed": sum(m["killed"] for m in mods),
        "survived": survived,
        "equivalent": sum(m["equivalent"] for m in mods),
        "seconds": round(sum(m["seconds"] for m in mods), 1),
        "survived_fraction": round(survived / ran, 4) if ran else None,
        "target": "survived (equivalents excluded) <= 10% of the mutants run",
    }
    found = {e["mutant"] for m in mods for e in m["equivalents"]}
    done = {m["source"].removeprefix("src/").removesuffix(".py").replace("/", ".") for m in mods}
    # An entry of EQUIVALENT for a module that ran but that no longer names a survivor: stale.
    report["stale_equivalents"] = sorted(
        k for k in EQUIVALENT if k not in found and any(k.startswith(d + ".") for d in done)
    )
    report["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    report["tool"] = "mutmut " + _mutmut_version()
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    keys = argv or ORDER
    unknown = [k for k in keys if k not in MODULES]
    if unknown:
        print(f"error: unknown module(s) {unknown}; choose from {list(MODULES)}", file=sys.stderr)
        return 2
    report = json.loads(RESULT.read_text()) if RESULT.exists() else {"modules": {}}
    for key in keys:
        print(f"== mutate {key} ({MODULES[key][0]})", flush=True)
        res = run_module(key)
        report["modules"][key] = res
        _write(report)
        print(
            f"   {res['run']} run, {res['killed']} killed, {res['survived']} survived, "
            f"{res['equivalent']} equivalent, {res['not_run']} not run ({res['seconds']} s)",
            flush=True,
        )
        for s in res["survivors"]:
            changed = next((ln for ln in s["diff"].splitlines() if ln.startswith("+")), "")
            print(f"   survivor {s['mutant'].rsplit('.', 1)[-1]}: {changed[1:].strip()[:100]}", flush=True)
    t = report["total"]
    print(f"total: {t['run']} run, {t['survived']} survived ({t['survived_fraction']}) -> {RESULT}")
    if report["stale_equivalents"]:
        print(f"stale EQUIVALENT entries (no longer survivors): {report['stale_equivalents']}")
    return 0


def _mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
