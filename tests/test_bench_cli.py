"""`python -m bench --help` explains and runs nothing (it used to start every benchmark)."""

from __future__ import annotations

from conftest import ROOT, run_cli


def test_bench_help_lists_the_benchmarks_and_writes_nothing() -> None:
    """Catches: --help read as "no name given", which runs (and writes) every benchmark."""
    results = ROOT / "bench" / "results"
    before = {p.name: p.stat().st_mtime_ns for p in results.glob("*")} if results.is_dir() else {}
    proc = run_cli("bench", "--help", timeout=120, check=True)
    from bench.__main__ import available

    for name in available():
        assert f"  {name} " in proc.stdout, name
    after = {p.name: p.stat().st_mtime_ns for p in results.glob("*")} if results.is_dir() else {}
    assert after == before
    bad = run_cli("bench", "--fast", timeout=120)
    assert bad.returncode == 2 and "unknown option --fast" in bad.stderr
