"""`litvision test`: test a checkpoint on the experiment's test split, in a run folder of its own.

litvision test ckpt_path=runs/digits_cnn/<stamp>/checkpoints/best-epoch012.ckpt

The task comes from the checkpoint by the one task-from-checkpoint function predict and export use
(litvision.tasks.restore.load_task): its network and weights; the experiment gives the test-time
settings (test_tta, metric options) and the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litvision.lifecycle.session import Session
from litvision.lifecycle.spec import Command


def run(session: Session) -> dict[str, Any]:
    from litvision.tasks.restore import load_task
    from litvision.utils.run import to_floats
    from litvision.utils.safe_load import load_checkpoint

    path = Path(session.ckpt_path)
    task, _ = load_task(load_checkpoint(path), path, session.cfg, task_options=True)
    datamodule = session.datamodule()
    trainer = session.trainer(callbacks=[])
    metrics = trainer.test(task, datamodule=datamodule, verbose=False)
    fields = {"checkpoint": str(Path(session.ckpt_path).resolve()), "test": to_floats(metrics[0])}
    if getattr(task, "test_per_class_ap", None) is not None:  # detection: AP, P, R, F1 per class
        fields["test_per_class_ap"] = task.test_per_class_ap
    return fields


#: `litvision test`: runs/<experiment>/eval/<stamp>/ (configs/eval.yaml sets it), from a checkpoint.
COMMAND = Command("test", "eval", run, needs_checkpoint=True)
