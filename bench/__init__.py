"""litvision benchmarks: `make bench` (or `python -m bench [name ...]`).

Each module `bench/bench_<name>.py` defines `run() -> dict` and measures litvision
against a baseline in the same process run, so that results are ratios, not
absolute timings of one machine. Results go to bench/results/<name>.json.
"""
