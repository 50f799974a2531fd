"""The docs match the checkout: the README's Layout tree lists what src/litvision, configs/ and the top
level hold (and nothing that is not there), the file links (with their #anchors) and file paths of the README
and of the pages it points to (docs/*.md, bench/README.md) exist, no tracked file cites the internal recipes
file (experiments cite the original papers and URLs), the benchmark figures those pages quote are the values
in bench/results/*.json, and the README stays a README for users: under 25 KB, linking every page."""

from __future__ import annotations

import json
import re
import subprocess

from conftest import ROOT
from test_readme_commands import doc_files

README = ROOT / "README.md"
# A README a user reads: the first screen, the quick starts, the recipes; the rest is in docs/ and bench/.
README_MAX_BYTES = 25_600
SRC = ROOT / "src" / "litvision"


def layout_block() -> list[str]:
    text = README.read_text()
    section = text[text.index("\n## Layout") :]
    return section.split("```", 2)[1].strip("\n").splitlines()


def layout_entries() -> tuple[dict[str, str], dict[str, str]]:
    """({top-level name: its text}, {src/litvision name: its text}): the first column of each tree line (names
    separated by one space, then two or more spaces before the description), continuation lines appended."""
    top: dict[str, str] = {}
    src: dict[str, str] = {}
    last: tuple[dict, list[str]] | None = None
    for line in layout_block():
        indent = len(line) - len(line.lstrip())
        if indent >= 8 or not line.strip():  # a continuation of the previous description
            for name in last[1]:
                last[0][name] += " " + line.strip()
            continue
        head, _, desc = line.strip().partition("  ")
        names = head.split()
        target = top if indent == 0 else src
        for name in names:
            target[name] = desc.strip()
        last = (target, names)
    return top, src


def tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def test_layout_lists_every_module_of_src() -> None:
    """Every module and subpackage of src/litvision is in the tree, and every name there exists
    (break: delete the `errors.py` line of the tree, or list a `metrics2/` that does not exist)."""
    _, src = layout_entries()
    on_disk = {p.name for p in SRC.glob("*.py") if p.name != "__init__.py"}
    on_disk |= {f"{p.name}/" for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    assert not on_disk - set(src), f"missing from the README's Layout tree: {sorted(on_disk - set(src))}"
    assert not set(src) - on_disk, (
        f"in the Layout tree but not in src/litvision: {sorted(set(src) - on_disk)}"
    )


def test_layout_lists_the_top_level_and_config_groups() -> None:
    """Every tracked top-level folder and every configs/ group is named, and what is named exists
    (break: drop `sweeps/` from the tree, or `hparams_search/` from the configs line)."""
    top, _ = layout_entries()
    folders = {f"{path.split('/')[0]}/" for path in tracked() if "/" in path and not path.startswith(".")}
    missing = folders - {"src/"} - set(top)
    assert not missing, f"top-level folders missing from the Layout tree: {sorted(missing)}"
    for name in top:
        assert (ROOT / name).exists(), f"the Layout tree lists {name}, which does not exist"
    groups = {f"{p.name}/" for p in (ROOT / "configs").iterdir() if p.is_dir() and p.name != "experiment"}
    named = set(re.findall(r"\b([a-z_]+/)", top["configs/"]))
    assert groups <= named, f"config groups missing from the configs/ line: {sorted(groups - named)}"
    for name in named - {"experiment/"}:
        assert (ROOT / "configs" / name).is_dir() or (ROOT / "configs" / "hydra" / name).is_dir(), name
    for entry in re.findall(r"\b(\w+\.yaml)\b", top["configs/"]):
        assert (ROOT / "configs" / entry).is_file(), entry


def test_no_file_cites_the_internal_recipes_file() -> None:
    """Experiments cite their papers and URLs, not a file that is not in the repository
    (break: put the old "(RECIPES" ".md)" back into experiments/alexnet_cifar10.yaml)."""
    name = "RECIPES" + ".md"  # spelled apart, so this file does not cite it either
    cited = [p for p in tracked() if (ROOT / p).is_file() and name in (ROOT / p).read_text(errors="ignore")]
    assert not cited, f"{name} is not in the repository but is cited by {cited}"


def heading_anchors(text: str) -> set[str]:
    """The #anchors GitHub gives a markdown file's headings (lower case, punctuation dropped, blanks -> -)."""
    heads = re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_readme_links_and_paths_exist() -> None:
    """In the README, docs/*.md and bench/README.md, every relative link (from the page's folder, with its
    #anchor) and every concrete repository path in backticks exists (break: rename notebooks/01_data_tour.ipynb,
    cite `bench/results/scale2.json`, or link docs/scaling.md#device-cache from the README)."""
    roots = {path.split("/")[0] for path in tracked() if "/" in path} - {"src"}
    missing = []
    for doc in doc_files():
        text = doc.read_text()
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?[^)]*\)", text):
            if "://" in target:
                continue
            page = (doc.parent / target).resolve() if target else doc
            if not page.exists() or (anchor and anchor not in heading_anchors(page.read_text())):
                missing.append(f"{doc.relative_to(ROOT)}: ({target}#{anchor})")
        paths = [
            t
            for t in re.findall(r"`([A-Za-z0-9_./-]+)`", text)
            if t.split("/")[0] in roots and "/" in t and not re.search(r"[<>*$]", t)
        ]
        missing += [f"{doc.relative_to(ROOT)}: `{t}`" for t in paths if not (ROOT / t).exists()]
        if doc == README:
            assert paths, "no repository path found in the README's code spans"
    assert not missing, f"the docs name files or sections that do not exist: {missing}"


def test_readme_is_under_25_kb_and_links_every_page() -> None:
    """The README stays one for users, at most 25 KB, and every page that took its details is linked from it.
    Catches: docs/tracking.md's sections pasted back into the README (31 KB), or a page of docs/ left without
    a link from the README (drop the docs/predict.md link)."""
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes, over {README_MAX_BYTES}: move details to docs/"
    )
    text = README.read_text()
    linked = {(ROOT / t).resolve() for t in re.findall(r"\]\(([^)#\s]+)", text) if "://" not in t}
    unlinked = [str(p.relative_to(ROOT)) for p in doc_files()[1:] if p.resolve() not in linked]
    assert not unlinked, f"pages the README does not link: {unlinked}"


# The quotes of bench/results/*.json: (the page quoting it, file, keys into it, how the page writes the value).
QUOTED = [
    ("bench/README.md", "scale.json", ("ratios", "ddp_2proc_over_1proc_time_per_epoch"), "{:.2f}x"),
    ("bench/README.md", "scale.json", ("ratios", "bf16_over_fp32_time_per_epoch"), "{:.2f}x"),
    ("docs/scaling.md", "scale.json", ("ratios", "ddp_2proc_over_1proc_time_per_epoch"), "{:.2f}x"),
    ("docs/scaling.md", "scale.json", ("ratios", "bf16_over_fp32_time_per_epoch"), "{:.2f}x"),
    ("bench/README.md", "throughput.json", None, None),
    ("bench/README.md", "throughput_h200.json", None, None),
    ("bench/README.md", "step_overhead.json", ("litvision_extra_ms",), "{:.3f} ms"),
    ("bench/README.md", "step_overhead.json", ("ms_per_step", "hand_loop"), "{:.3f} ms"),
    (
        "bench/README.md",
        "setup_scale.json",
        ("image_folder", "1000000", "first_run", "seconds_to_first_batch"),
        "{:.1f} s",
    ),
    (
        "bench/README.md",
        "setup_scale.json",
        ("image_folder", "1000000", "second_run", "seconds_to_first_batch"),
        "{:.1f} s",
    ),
    (
        "bench/README.md",
        "setup_scale.json",
        ("image_folder", "1000000", "first_run", "cpu_s_to_first_batch"),
        "{:.1f} s",
    ),
]


def _get(data: dict, keys: tuple[str, ...]):
    for k in keys:
        data = data[k]
    return data


def test_quoted_benchmark_figures_match_their_result_files() -> None:
    """Each figure a page quotes from a result file is that file's value, and each result file it names
    exists (break: change 1.90x to 1.76x in bench/README.md, as the issue found it in the README, or in
    docs/scaling.md)."""
    for page, name, keys, fmt in QUOTED:
        text = (ROOT / page).read_text()
        path = ROOT / "bench" / "results" / name
        assert f"bench/results/{name}" in text and path.is_file(), (
            f"{page} does not name bench/results/{name}"
        )
        if keys:
            value = fmt.format(_get(json.loads(path.read_text()), keys))
            assert value in text, f"{page} does not quote {name} {'.'.join(keys)} = {value}"
