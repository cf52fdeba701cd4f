"""No dangling references in the documentation: every repository path and every relative link named in the README,
docs/ and the folder READMEs exists, every `#anchor` names a heading of its file, and no absolute machine path
(a checkout's or a home folder) is written down. Fast: text only, no imports of tacos."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md"), REPO / "data" / "README.md",
     *(REPO / "data").glob("*/README.md"), REPO / "evaluate" / "README.md", REPO / "infer" / "README.md",
     REPO / "train" / "README.md"])

# The repository's top-level folders and files: a path that starts with one of them is a claim about the checkout.
TOP = ("tacos", "conf", "scripts", "tests", "measurements", "data", "docs", "train", "infer", "evaluate", ".ci",
       "run.py", "multirun.sh", "pyproject.toml", "setup.py")
PATH = re.compile(r"(?<![\w./<>{}$~-])((?:%s)(?:/[\w.@+-]+)*/?)" % "|".join(re.escape(t) for t in TOP))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# Paths inside a run dir or an output folder that share a name with a repository folder (`<run_dir>/data/records.jsonl`,
# `<stage>/infer/model_answer/...`, `judge/model_judgment/...`): they are not files of the checkout.
RUN_DIR_PATHS = ("data/records.jsonl", "infer/model_answer", "train/train.yaml")
# Paths of other repositories' trees, named where a README maps them to ours.
EXTERNAL = {
    "infer/fastchat/llm_judge/data/mt_bench/question.jsonl": "OpenCS (hexixiang/OpenCS)",
    "data/judge_prompts.jsonl": "FastChat's fastchat/llm_judge",
    "data/mt_bench/model_judgment/gpt-4_single.jsonl": "FastChat's fastchat/llm_judge",
    "data/mt_bench/model_answer/": "FastChat's fastchat/llm_judge",
}
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:work|home|root|Users)/[\w.-]+")
# The developers' notes (method spec, stack notes) are not shipped: a reader cannot follow "method_spec §17".
NOTES = re.compile(r"method_spec|stack[_ ]notes|§\s*\d")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def _mentions(doc: Path) -> list[str]:
    """The repository paths a document names, in prose, in code spans and in code blocks."""
    text = doc.read_text(encoding="utf-8")
    found = []
    for match in PATH.finditer(text):
        token = match.group(1).rstrip(".")
        after = text[match.end():match.end() + 1]
        if after and after in "<{*$=":  # a placeholder or a glob continues it (`train/ds_<kind>.json`), or it is
            continue                  # a config group being set (`infer/generator=vllm`)
        if text[match.start() - 1:match.start()] == "/":  # the tail of a longer path
            continue
        if token in TOP and "/" not in token and not token.endswith((".py", ".sh", ".toml")):
            continue  # a bare word such as "data" or "train" in prose
        if token.startswith(RUN_DIR_PATHS) or token in EXTERNAL:
            continue
        found.append(token)
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_named_paths_exist(doc: Path):
    # A path relative to the repository, to the document's folder, or a config group (`infer/generator` is conf/...).
    missing = sorted({token for token in _mentions(doc) if not any(
        (base / token).exists() for base in (REPO, doc.parent, REPO / "conf"))})
    assert not missing, f"{doc.relative_to(REPO)} names paths that are not in the repository: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_links_resolve(doc: Path):
    broken = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(target)
    assert not broken, f"{doc.relative_to(REPO)} has links to nothing: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_machine_paths(doc: Path):
    text = doc.read_text(encoding="utf-8")
    found = sorted(set(MACHINE_PATH.findall(text)))
    assert not found, f"{doc.relative_to(REPO)} names paths of one machine: {found}"
    notes = sorted({text[max(m.start() - 30, 0):m.end() + 10] for m in NOTES.finditer(text)})
    assert not notes, f"{doc.relative_to(REPO)} cites notes that are not in the repository: {notes}"


def test_the_checker_sees_what_it_must(tmp_path: Path):
    """A missing file in prose or a code span is seen; run-dir paths, placeholders, globs and config groups are not."""
    doc = tmp_path / "x.md"
    doc.write_text("See tacos/nowhere.py and `conf/missing/`, not `<run_dir>/data/records.jsonl`, "
                   "`train/ds_<kind>.json`, `data/test_sets/*.jsonl` or `infer/generator=vllm`.\n")
    assert _mentions(doc) == ["tacos/nowhere.py", "conf/missing/"]
    assert _slug("Experiments: the paper's runs") == "experiments-the-papers-runs"
    assert _slug("Comparing runs in W&B") == "comparing-runs-in-wb"
