"""Run the notebooks top to bottom, and keep their outputs out of git.

    make notebooks                                                   # execute all -> runs/notebooks/
    python -m litvision.tracking.notebooks --execute notebooks/*.ipynb [--out runs/notebooks]
    python -m litvision.tracking.notebooks --strip notebooks/*.ipynb   # before committing
    python -m litvision.tracking.notebooks --check notebooks/*.ipynb   # CI: fails if outputs are committed

Executed copies go to `--out` (default runs/notebooks/, ignored by git), never over the sources.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# Metadata that editors add and that only makes diffs noisy.
_VOLATILE_METADATA = ("widgets", "varInspector", "toc", "execution")


def strip_notebook(nb: Any) -> bool:
    """Clear outputs, execution counts and volatile metadata in place; True if anything changed."""
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code":
            if cell.get("outputs") or cell.get("execution_count") is not None:
                changed = True
            cell["outputs"] = []
            cell["execution_count"] = None
        for key in _VOLATILE_METADATA:
            if key in cell.get("metadata", {}):
                del cell["metadata"][key]
                changed = True
    for key in _VOLATILE_METADATA:
        if key in nb.metadata:
            del nb.metadata[key]
            changed = True
    return changed


def is_stripped(path: str | Path) -> bool:
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    return not strip_notebook(nb)


def execute(path: str | Path, out_dir: str | Path | None = None, timeout: int = 600) -> Any:
    """Execute a notebook in its own folder with a fresh kernel of this Python; returns the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path).resolve()
    nb = nbformat.read(str(path), as_version=4)
    # The kernel is this interpreter (ipykernel's native spec), so it sees the same litvision.
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    if out_dir is not None:
        out = Path(out_dir) / path.name
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(out))
    return nb


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m litvision.tracking.notebooks", description=__doc__.split("\n")[0]
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--execute", action="store_true", help="run each notebook; save executed copies to --out"
    )
    group.add_argument("--strip", action="store_true", help="remove outputs in place")
    group.add_argument("--check", action="store_true", help="exit 1 if any notebook has outputs")
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for executed copies (default runs/notebooks)"
    )
    args = parser.parse_args(argv)
    missing = [p for p in args.notebooks if not p.is_file()]
    if missing:
        print(f"error: no such notebook: {', '.join(map(str, missing))}", file=sys.stderr)
        raise SystemExit(2)
    if args.execute:
        from litvision.config import project_root

        out = args.out or project_root() / "runs" / "notebooks"
        for p in args.notebooks:
            print(f"executing {p} ...", flush=True)
            execute(p, out)
        print(f"executed copies in {out}")
    elif args.strip:
        import nbformat

        for p in args.notebooks:
            nb = nbformat.read(str(p), as_version=4)
            if strip_notebook(nb):
                nbformat.write(nb, str(p))
                print(f"stripped {p}")
    else:
        dirty = [p for p in args.notebooks if not is_stripped(p)]
        for p in dirty:
            print(
                f"{p} has outputs: run `python -m litvision.tracking.notebooks --strip {p}`", file=sys.stderr
            )
        raise SystemExit(1 if dirty else 0)


if __name__ == "__main__":
    main()
