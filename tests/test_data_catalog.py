"""The data catalog: every dataset by name, its fixture, and its data config agreeing with it.

The suite takes its datasets from here (test_data_classification, test_experiments), so a dataset
that registers no fixture must fail a test that names it instead of being skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, compose_cfg

from litvision.data import catalog
from litvision.data.catalog import datasets, register_dataset
from litvision.data.datasets import registry


def assert_has_fixture(name: str) -> None:
    spec = catalog.dataset(name)
    missing = [line for line in catalog.missing_fixtures() if line.startswith(f"dataset {name!r}")]
    assert not missing, "\n".join(missing)
    assert spec.fixture_maker() is not None


@pytest.mark.parametrize("name", sorted(datasets()))
def test_dataset_has_a_fixture(name: str) -> None:
    """Catches: a dataset registered with fixture=None (its experiments would go untested), and a
    fixture string naming a function that does not exist (AttributeError here, not in a CI run)."""
    assert_has_fixture(name)


def test_a_dataset_without_a_fixture_fails_naming_it(monkeypatch) -> None:
    """Register a dataset with no fixture: the check the test above runs fails with its name.
    Catches: missing_fixtures() ignoring fixture=None, and fixture_maker() inventing one."""

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_dataset(
        "fashion_mnist", kind="classification", channels=1, native_size=28, num_classes=10, fixture=None
    )
    class FashionMNISTDataModule:
        """Zalando's Fashion-MNIST (a dataset a user adds)."""

    assert "fashion_mnist" in datasets()
    with pytest.raises(AssertionError) as failed:
        assert_has_fixture("fashion_mnist")
    message = str(failed.value)
    assert (
        message.startswith("dataset 'fashion_mnist' (test_data_catalog.")
        and "FashionMNISTDataModule" in message
    )
    assert "registers no fixture: pass fixture='module:function' to register_dataset" in message
    assert FashionMNISTDataModule.dataset_spec.fixture is None


def test_every_data_config_is_a_registered_dataset() -> None:
    """Catches: a new configs/data/<name>.yaml without a registered reader (the suite would not run
    it on a fixture), or a registration whose name has no data config."""
    configs = {p.stem for p in (ROOT / "configs" / "data").glob("*.yaml")}
    assert configs == set(datasets())


@pytest.mark.parametrize("name", sorted(datasets()))
def test_data_config_agrees_with_its_catalog_entry(name: str, runs_dir: Path) -> None:
    """The config builds the entry's DataModule with the entry's classes, channels and mean/std.
    Catches: a config's _target_ naming another DataModule, and a mean/std or class count that
    drifted between configs/data/<name>.yaml and the registration (e.g. MNIST's std typed as 0.3801)."""
    spec = catalog.dataset(name)
    data = compose_cfg([f"data={name}"], runs_dir).data
    assert data._target_ == spec.datamodule
    assert spec.kind in catalog.KINDS
    if spec.num_classes is not None:
        assert data.num_classes == spec.num_classes
    if spec.kind == "classification":
        assert data.in_channels == spec.channels
        if "mean" in data:
            assert (tuple(data.mean), tuple(data.std)) == (spec.mean, spec.std)


def test_register_dataset_refuses_contradictions(monkeypatch) -> None:
    """Catches: mean/std of the wrong length, classes and num_classes that disagree, and one name
    registered by two DataModules, all accepted silently."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    common = {"kind": "classification", "native_size": None, "fixture": "x:y"}
    with pytest.raises(ValueError, match="mean has 1 values for 3 channels"):
        register_dataset("a", channels=3, mean=(0.5,), std=(0.5, 0.5, 0.5), **common)
    with pytest.raises(ValueError, match="2 classes but num_classes=3"):
        register_dataset("a", channels=3, classes=["x", "y"], num_classes=3, **common)
    with pytest.raises(ValueError, match="kind="):
        register_dataset("a", channels=3, **{**common, "kind": "segmentation"})
    with pytest.raises(ValueError, match="registered twice"):
        register_dataset("mnist", channels=1, **common)(type("Other", (), {}))


def test_list_datasets_shows_every_dataset(capsys, monkeypatch) -> None:
    """Catches: `litvision list datasets` printing the experiments, or leaving datasets out."""
    from litvision.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    main(["list", "datasets"])
    out = capsys.readouterr().out
    for name, spec in datasets().items():
        assert name in out and spec.datamodule.rsplit(".", 1)[-1] in out
