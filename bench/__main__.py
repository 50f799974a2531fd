"""Run the benchmarks: `python -m bench` (all) or `python -m bench training_step ...`."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def usage() -> str:
    lines = ['usage: python -m bench [name ...]   (make bench ARGS="name ..."); no name runs them all', ""]
    for name in available():
        doc = (importlib.import_module(f"bench.bench_{name}").__doc__ or "").strip().splitlines()
        lines.append(f"  {name:<16} {doc[0] if doc else ''}")
    lines.append("\n  --small          the reduced size the test suite runs (setup_scale, step_overhead)")
    lines.append(
        "\nEach writes bench/results/<name>.json: ratios against a baseline measured in the same run."
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(usage())
        return 0
    # --small: the reduced size the test suite runs (benchmarks whose run() takes `small`), written to
    # <name>_small.json so that it never replaces a full run's figures.
    small = "--small" in argv
    options = [a for a in argv if a.startswith("-") and a != "--small"]
    if options:
        print(f"error: unknown option {options[0]}; see `python -m bench --help`.", file=sys.stderr)
        return 2
    names = [a for a in argv if not a.startswith("-")] or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"error: unknown benchmark(s) {unknown}; available: {available()}", file=sys.stderr)
        return 2
    out_dir = Path(os.environ.get("BENCH_RESULTS_DIR") or HERE / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        print(f"== bench {name}", flush=True)
        started = time.time()
        run = importlib.import_module(f"bench.bench_{name}").run
        takes_small = "small" in inspect.signature(run).parameters
        if small and not takes_small:
            print(f"error: bench {name} has no --small size.", file=sys.stderr)
            return 2
        result = run(small=True) if small else run()
        result = {
            "benchmark": name,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {
                "python": platform.python_version(),
                "processor": platform.machine(),
                "cpus": __import__("os").cpu_count(),
            },
            "bench_wall_s": round(time.time() - started, 1),
            **result,
        }
        (out_dir / f"{name}{'_small' if small else ''}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
