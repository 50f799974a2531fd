"""`litvision test`: test a checkpoint on the experiment's test split, in a run folder of its own.

litvision test ckpt_path=runs/digits_cnn/<stamp>/checkpoints/best-epoch012.ckpt
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litvision.lifecycle.runner import Command
from litvision.lifecycle.session import Session


def run(session: Session) -> dict[str, Any]:
    from litvision.utils.run import to_floats

    datamodule, task = session.datamodule(), session.task(pretrained=False)
    trainer = session.trainer(callbacks=[])
    metrics = trainer.test(task, datamodule=datamodule, ckpt_path=session.ckpt_path, verbose=False)
    fields = {"checkpoint": str(Path(session.ckpt_path).resolve()), "test": to_floats(metrics[0])}
    if getattr(task, "test_per_class_ap", None) is not None:  # detection: AP, P, R, F1 per class
        fields["test_per_class_ap"] = task.test_per_class_ap
    return fields


#: `litvision test`: runs/<experiment>/eval/<stamp>/ (configs/eval.yaml sets it), from a checkpoint.
COMMAND = Command("test", "eval", run, needs_checkpoint=True)
