"""Test-only callback for the device-cache DDP test (importable by subprocesses: tests/ is on PYTHONPATH)."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class RecordShards(Callback):
    """Each rank writes the indices its training loader reads in each epoch, and how many batches it yields."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        loader = trainer.train_dataloader
        record = {
            "loader": type(loader).__name__,
            "indices": loader.sampler.indices().tolist(),
            "batches": len(loader),
            "device": str(loader.device),
        }
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.json"
        path.write_text(json.dumps(record))
