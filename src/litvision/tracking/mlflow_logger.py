"""The MLflow logger of a litvision run: a local store inside the run folder, the run's full config
as params, metrics under litvision's names, figures as artifacts, and resume into the same run.

    make train ARGS="logger=mlflow"                      # <run>/mlflow/mlflow.db + <run>/mlflow/artifacts
    MLFLOW_TRACKING_URI=http://mlflow:5000 make train ARGS="logger=mlflow"     # a tracking server
    pip install mlflow && mlflow ui --backend-store-uri sqlite:///<run>/mlflow/mlflow.db   # browse (full mlflow)

Where: `logger.mlflow.tracking_uri`, else MLFLOW_TRACKING_URI, else the URI the run used before
(a resume), else `sqlite:///<run>/mlflow/mlflow.db` with artifacts in `<run>/mlflow/artifacts`.
A SQLite file, not MLflow's `./mlruns` folder: MLflow 3 refuses the file store unless
MLFLOW_ALLOW_FILE_STORE=true ("maintenance mode"). To see the runs of a sweep side by side, point
every run at one store: `logger.mlflow.tracking_uri=shared` (`<paths.runs_dir>/mlflow.db`, artifacts
beside it), or `MLFLOW_TRACKING_URI=sqlite:////abs/path/mlflow.db`. `make compare` reads each run's
curves from the store its `mlflow_run.json` names.

What is logged: params = the run's resolved `config.yaml` (flattened `a.b.c` keys, as the run
saved it before fit; Lightning's module hyper-parameters under `hparams.`), metrics = the same
names as the CSV logger (`train/loss`, `val/acc`, ...; the last value of `val/*` and `test/*` is
the re-validation of the best checkpoint and the test, i.e. what summary.json says), figures =
every `log_figure` (confusion matrix, sample grids) under `figures/`, and at the end the run's
`summary.json` and `config.yaml` as `litvision_summary.json` and `litvision_config.yaml` (renamed so
that tools searching the run folder for those names do not find a second run in the local store).

Checked up front (tracking/mlflow_store.check_store, from the pre-flight checks, before any run folder exists): a
tracking URI whose store cannot work is refused in one line (a SQLite file or store folder that is
read-only or missing, a server that does not answer GET /health within 3 s, an unknown scheme) instead of
MLflow retrying for minutes and then failing after the run folder was made.

Resume: the run id and tracking URI are kept in `<run>/mlflow_run.json` (as W&B's id is kept in
`<run>/wandb_run_id`); a resumed or requeued job logs into the same MLflow run. MLflow refuses to
change a param's value; a key that a resume changes (e.g. `trainer.max_epochs` to extend) is
recorded as the tag `resume.<key>` instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger as _LightningMLFlowLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from litvision.errors import UserError
from litvision.utils.run import flatten

RUN_FILE = "mlflow_run.json"
STORE_DIR = "mlflow"
PARAM_VALUE_LIMIT = 6000
# tracking_uri value for one store shared by every run under paths.runs_dir.
SHARED = "shared"  # MLflow >= 2.x: params hold up to 6000 characters


def _read_run_file(run_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((run_dir / RUN_FILE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _artifact_location(uri: str, run_dir: Path | None) -> str | None:
    """Where a new experiment keeps its artifacts: beside a SQLite file (the run folder's own store,
    or a shared `sqlite:///.../mlflow.db`); a server decides for itself (None). MLflow's default
    for a SQLite store would be `./mlruns` in whatever folder the job was started from."""
    if run_dir is not None:
        return (run_dir / STORE_DIR / "artifacts").resolve().as_uri()
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    return None


def shared_tracking_uri(runs_dir: str | Path) -> str:
    """`logger.mlflow.tracking_uri=shared`: one SQLite store for every run, `<runs_dir>/mlflow.db`."""
    return f"sqlite:///{(Path(runs_dir) / 'mlflow.db').resolve()}"


def default_tracking_uri(run_dir: str | Path) -> str:
    return f"sqlite:///{(Path(run_dir) / STORE_DIR / 'mlflow.db').resolve()}"


class MLFlowLogger(_LightningMLFlowLogger):
    """Lightning's MLFlowLogger with the run folder as its home; see the module docstring."""

    def __init__(
        self,
        save_dir: str,
        experiment_name: str = "litvision",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: Mapping[str, Any] | None = None,
        log_model: bool = False,
        runs_dir: str | None = None,
    ) -> None:
        self.run_dir = Path(save_dir)
        stored = _read_run_file(self.run_dir)
        if tracking_uri == SHARED:
            tracking_uri = shared_tracking_uri(runs_dir or self.run_dir.parent)
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or stored.get("tracking_uri")
        local = not uri
        uri = uri or default_tracking_uri(self.run_dir)
        if local and rank_zero_only.rank == 0:
            (self.run_dir / STORE_DIR).mkdir(parents=True, exist_ok=True)
        import mlflow  # noqa: F401  (installs MLflow's stderr handlers, routed to the run's log below)

        from litvision.utils.console import THIRD_PARTY_LOGGERS, route_to_log

        # Lightning opens the store here: "Creating initial MLflow database tables..." and alembic's
        # lines go to train.log, not the console (errors still show).
        route_to_log(*THIRD_PARTY_LOGGERS)
        if run_name is None:
            from litvision.tracking.wandb_logger import run_name as _run_name

            run_name = _run_name(experiment_name, self.run_dir)
        super().__init__(
            experiment_name=experiment_name,
            run_name=run_name,
            tracking_uri=uri,
            tags=dict(tags or {}),
            save_dir=None,
            log_model=log_model,
            artifact_location=_artifact_location(uri, self.run_dir if local else None),
            run_id=stored.get("run_id"),
        )

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._initialized:
            return self._mlflow_client
        if self._run_id is not None:
            try:
                client = super().experiment
            except Exception as e:  # noqa: BLE001 - MlflowException or a connection error: one line
                raise UserError(
                    f"MLflow run {self._run_id} (from {self.run_dir / RUN_FILE}) cannot be opened at "
                    f"{self._tracking_uri} ({type(e).__name__}); set MLFLOW_TRACKING_URI to the store the run "
                    "started on, or logger=csv."
                ) from None
            return client
        client = super().experiment
        _write_run_file(self.run_dir, {"run_id": self._run_id, "tracking_uri": self._tracking_uri})
        return client

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        """The run's resolved config (config.yaml) as params, plus the module's under `hparams.`.

        On resume MLflow would refuse a changed value: changed keys become `resume.<key>` tags.
        """
        import yaml
        from lightning.fabric.utilities.logger import _convert_params
        from mlflow.entities import Param, RunTag

        values: dict[str, Any] = {}
        config = self.run_dir / "config.yaml"
        if config.is_file():
            values.update(flatten(yaml.safe_load(config.read_text()) or {}))
        values.update(flatten(dict(_convert_params(params) or {}), "hparams"))
        existing = self.experiment.get_run(self.run_id).data.params
        new, changed = [], []
        for k, v in values.items():
            text = str(v)[:PARAM_VALUE_LIMIT]
            if k not in existing:
                new.append(Param(key=k, value=text))
            elif existing[k] != text:
                changed.append(RunTag(key=f"resume.{k}", value=text))
        for i in range(0, len(new), 100):  # MLflow takes at most 100 params per batch
            self.experiment.log_batch(run_id=self.run_id, params=new[i : i + 100])
        for i in range(0, len(changed), 100):
            self.experiment.log_batch(run_id=self.run_id, tags=changed[i : i + 100])

    @rank_zero_only
    def log_figure(self, tag: str, figure: Any, step: int) -> None:
        self.experiment.log_figure(
            self.run_id, figure, f"figures/{tag.replace('/', '_')}/step_{step:07d}.png"
        )


def _write_run_file(run_dir: Path, data: dict[str, Any]) -> None:
    if rank_zero_only.rank != 0:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / RUN_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data) + "\n")
    os.replace(tmp, path)


def finish(loggers: list[Any], summary: Mapping[str, Any] | None = None) -> None:
    """At the end of a job (rank zero): summary.json and config.yaml as artifacts of the MLflow run,
    and summary facts (wall time, epochs) as tags. Lightning's `MLFlowLogger.finalize` has marked the
    run FINISHED already, at the end of fit and of test (tests/test_tracking_mlflow.py checks it)."""
    if rank_zero_only.rank != 0:
        return
    for logger in loggers:
        if not isinstance(logger, MLFlowLogger) or not logger._initialized:
            continue
        client, run_id = logger.experiment, logger.run_id
        # Renamed: with the local store inside the run folder, a second `summary.json` or
        # `config.yaml` there would look like another run to tools that search for them.
        for name, as_name in (
            ("summary.json", "litvision_summary.json"),
            ("config.yaml", "litvision_config.yaml"),
        ):
            path = logger.run_dir / name
            if path.is_file():
                client.log_text(run_id, path.read_text(), as_name)
        for k in ("wall_time_s", "epochs_completed", "best_checkpoint", "git_commit"):
            if summary and summary.get(k) is not None:
                client.set_tag(run_id, f"summary.{k}", str(summary[k]))
