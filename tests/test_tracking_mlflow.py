"""`logger=mlflow`: a real digits run logged to MLflow's SQLite store inside the run folder, read back
with MLflow's own client (params = the resolved config, final metrics = summary.json, figures as
artifacts); a pre-empted run resumes into the same MLflow run; MLFLOW_TRACKING_URI is honoured."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, compose_cfg

TESTS = Path(__file__).resolve().parent
TINY = [
    "experiment=digits_cnn",
    "logger=[csv,mlflow]",
    "trainer.max_epochs=2",
    "++trainer.limit_train_batches=6",
    "++trainer.limit_val_batches=2",
    "++trainer.limit_test_batches=2",
    "trainer.log_every_n_steps=1",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.sample_grid=null",
]


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def _flat(d: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v:
            out.update(_flat(v, key))
        else:
            out[key] = str(v)
    return out


def test_mlflow_run_holds_config_final_metrics_and_figures(runs_dir: Path, monkeypatch) -> None:
    """Catches params that are only the module's hyper-parameters (not the run's config), metrics
    renamed or left at the last training epoch instead of the best checkpoint's re-validation and
    test, figures not sent to MLflow, a store outside the run folder, and a run left RUNNING (Lightning's
    finalize marks it FINISHED; litvision's own set_terminated after it was redundant and is removed)."""
    from litvision.train import train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = runs_dir / "one"
    summary = train(compose_cfg([*TINY, f"hydra.run.dir={run_dir}"], runs_dir))
    stored = json.loads((run_dir / "mlflow_run.json").read_text())
    assert stored["tracking_uri"] == f"sqlite:///{run_dir.resolve() / 'mlflow' / 'mlflow.db'}"
    client = _client(stored["tracking_uri"])
    run = client.get_run(stored["run_id"])
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "digits_cnn"

    config = _flat(yaml.safe_load((run_dir / "config.yaml").read_text()))
    params = run.data.params
    for key in ("model.optimizer.lr", "data.batch_size", "seed", "trainer.max_epochs", "model.net._target_"):
        assert params[key] == config[key], key
    assert {k for k in params if not k.startswith("hparams.")} == set(config)

    metrics = run.data.metrics
    for name, value in {**summary["best_val"], **summary["test"]}.items():
        assert math.isclose(metrics[name], value, rel_tol=1e-6), name
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert len(history) >= 2 and "val/acc" in metrics

    figures = [f.path for f in client.list_artifacts(run.info.run_id, "figures")]
    assert "figures/val_confusion_matrix" in figures and "figures/test_confusion_matrix" in figures
    [png] = client.list_artifacts(run.info.run_id, "figures/test_confusion_matrix")
    assert png.path.endswith(".png") and png.file_size > 5_000
    top = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"litvision_summary.json", "litvision_config.yaml"} <= top
    local = Path(client.download_artifacts(run.info.run_id, "litvision_summary.json", str(runs_dir)))
    assert json.loads(local.read_text())["test"] == summary["test"]
    assert (run_dir / "mlflow" / "artifacts").is_dir()
    # The store inside the run folder holds no second run for `make compare` to find.
    from litvision.tracking.run_records import find_run_dirs

    assert find_run_dirs(runs_dir) == [run_dir] and len(list(run_dir.rglob("summary.json"))) == 1


def test_mlflow_resume_continues_the_same_run(runs_dir: Path, monkeypatch) -> None:
    """Catches a resumed or requeued job that opens a second MLflow run (the id not kept in the run
    folder), or that fails because a resume logs params again."""
    from litvision.callbacks.preemption import Preempted
    from litvision.train import train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.syspath_prepend(str(TESTS))
    run_dir = runs_dir / "pre"
    kill = ["+callbacks.kill._target_=scale_helpers.SignalAtStep", "+callbacks.kill.step=8"]
    with pytest.raises(Preempted):
        train(compose_cfg([*TINY, *kill, f"hydra.run.dir={run_dir}"], runs_dir))
    first = json.loads((run_dir / "mlflow_run.json").read_text())
    client = _client(first["tracking_uri"])
    steps_before = [m.step for m in client.get_metric_history(first["run_id"], "train/loss")]
    assert max(steps_before) < 9

    summary = train(compose_cfg([*TINY, f"hydra.run.dir={run_dir}"], runs_dir))
    assert json.loads((run_dir / "mlflow_run.json").read_text()) == first
    [run] = client.search_runs([client.get_experiment_by_name("digits_cnn").experiment_id])
    assert run.info.run_id == first["run_id"] and run.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert max(steps) > max(steps_before)
    assert math.isclose(run.data.metrics["test/acc"], summary["test"]["test/acc"], rel_tol=1e-6)


def test_mlflow_tracking_uri_from_the_environment(runs_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """Catches MLFLOW_TRACKING_URI being ignored (the run logged into the run folder instead)."""
    from litvision.train import train

    uri = f"sqlite:///{tmp_path / 'server.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_dir = runs_dir / "env"
    summary = train(compose_cfg([*TINY, "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"], runs_dir))
    assert json.loads((run_dir / "mlflow_run.json").read_text())["tracking_uri"] == uri
    assert not (run_dir / "mlflow").exists()
    client = _client(uri)
    [run] = client.search_runs([client.get_experiment_by_name("digits_cnn").experiment_id])
    assert math.isclose(run.data.metrics["val/acc"], summary["best_val"]["val/acc"], rel_tol=1e-6)
    # Artifacts beside the shared SQLite file, not in ./mlruns of wherever the job started.
    assert {f.path for f in client.list_artifacts(run.info.run_id)} >= {"figures", "litvision_summary.json"}
    assert (tmp_path / "artifacts").is_dir() and not (ROOT / "mlruns").exists()


def test_mlflow_resume_against_another_store_is_one_line(runs_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """A run moved to another store (MLFLOW_TRACKING_URI set) is looked for there, and not found: one line
    naming that store. Catches a resume that silently starts a new MLflow run elsewhere, a traceback,
    and the stored URI preferred over MLFLOW_TRACKING_URI (the line then names the old store; mlflow's
    set_tracking_uri rewrites os.environ, so the expected URI is taken before the call)."""
    from litvision.errors import UserError
    from litvision.tracking.mlflow_logger import MLFlowLogger

    run_dir = runs_dir / "moved"
    run_dir.mkdir()
    old_store, new_store = f"sqlite:///{tmp_path / 'old.db'}", f"sqlite:///{tmp_path / 'other.db'}"
    (run_dir / "mlflow_run.json").write_text(json.dumps({"run_id": "0123abcd", "tracking_uri": old_store}))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", new_store)
    logger = MLFlowLogger(save_dir=str(run_dir), experiment_name="digits_cnn")
    with pytest.raises(UserError) as err:
        logger.log_metrics({"val/acc": 1.0}, step=0)
    assert "MLflow run 0123abcd" in str(err.value) and "\n" not in str(err.value)
    assert new_store in str(err.value) and old_store not in str(err.value), str(err.value)
    assert (tmp_path / "other.db").is_file() and not (tmp_path / "old.db").exists()
