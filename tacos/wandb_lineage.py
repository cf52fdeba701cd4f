"""The W&B artifacts of a run dir, built from what its stages wrote (stages never talk to W&B; tacos.tracking does):

    pool (reference to data/records.jsonl) -> subset (the export folder) -> model (reference to the trained weights,
    nothing uploaded) -> answers (infer's model_answer files)

and the selected rows as a table. An artifact's digest is a function of its files' contents (and of a reference's
path), so a later run that builds the same artifact again (the train run of another invocation, a job of a sweep that
reused a shared stage) names the same version: that is how a run "uses" what another run logged.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from tacos.method.subset_stats import has_markdown

PREVIEW_CHARS = 200
TABLE_ROWS = 5000  # the selected-rows table stops here (a 52k-row "full" baseline would be a 100 MB table)
SELECTED_COLUMNS = ["id", "instruction", "response_preview", "response_chars", "markdown", "cluster", "score", "rank",
                    "reason"]


def artifact_name(*parts: str) -> str:
    """W&B allows letters, digits, '-', '_' and '.' in artifact names."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(str(p) for p in parts if p))[:128]


def _manifest(stage_dir: Path) -> dict:
    p = stage_dir / "manifest.json"
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}


def _add_folder(artifact, folder: Path) -> None:
    """The folder's files, without the manifest (it holds timestamps and seconds: the same output would make a new
    version every run)."""
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json"):
        artifact.add_file(str(f), name=f.relative_to(folder).as_posix())


def pool_artifact(run_dir: Path, dataset: str):
    """The pool as a reference to the data stage's records.jsonl (checksummed, not uploaded), or None."""
    import wandb

    records = Path(run_dir) / "data" / "records.jsonl"
    if not records.is_file():
        return None
    m = _manifest(records.parent)
    art = wandb.Artifact(artifact_name("pool", dataset or "pool"), type="dataset",
                         description="the instruction pool (data stage), referenced, not uploaded",
                         metadata={"dataset": dataset, "rows": (m.get("counts") or {}).get("records"),
                                   "output_hash": m.get("output_hash")})
    art.add_reference(records.resolve().as_uri(), name="records.jsonl")
    return art


def subset_artifact(folder: Path, run_name: str, stats: dict | None = None, file: Path | None = None):
    """The selected subset: every file of an export (or refine) folder, or one training file given by path."""
    import wandb

    folder = Path(folder)
    kind = "refined" if folder.name == "refine" else ""
    stats = stats if stats is not None else _manifest(folder).get("stats", {})
    art = wandb.Artifact(artifact_name("subset", run_name, kind) if file is None else
                         artifact_name("subset", Path(file).stem), type="dataset",
                         description="the selected subset as trained on (ShareGPT JSON + LLaMA-Factory dataset_info)",
                         metadata={k: stats.get(k) for k in ("subset_sha256", "file", "rows", "contaminated_rows")
                                   if stats.get(k) is not None})
    if file is None:
        _add_folder(art, folder)
    else:
        art.add_file(str(file), name=Path(file).name)
    return art


def training_subset(run_dir: Path, train_stats: dict, run_name: str):
    """The subset a train stage trained on (its manifest names the file): the export / refine folder of this run dir
    when it came from there, else the file itself."""
    data_file = Path(train_stats.get("dataset_file") or "")
    if not data_file.is_file():
        return None
    folder = data_file.parent
    if folder.parent.resolve() == Path(run_dir).resolve() and folder.name in ("export", "refine"):
        return subset_artifact(folder, run_name)
    return subset_artifact(folder, run_name, stats={"subset_sha256": train_stats.get("dataset_sha256")},
                           file=data_file)


def model_artifact(train_dir: Path, run_name: str, model: str):
    """The trained model as a reference artifact (the weights stay where they are; nothing is uploaded or hashed),
    with the training results as files; None when nothing was trained."""
    import wandb

    stats = _manifest(train_dir).get("stats", {})
    path = stats.get("model_path")
    if not stats.get("launched") or not path:
        return None
    keys = ("model", "model_name_or_path", "finetuning_type", "recipe_sha256", "dataset_sha256", "global_step",
            "loss_first", "loss_last", "train_loss", "epochs")
    art = wandb.Artifact(artifact_name("model", run_name, model), type="model",
                         description="fine-tuned weights, referenced (not uploaded)",
                         metadata={k: stats.get(k) for k in keys if stats.get(k) is not None})
    art.add_reference(Path(path).resolve().as_uri(), name="weights", checksum=False)
    for name in ("train_results.json", "trainer_state.json"):
        if (train_dir / name).is_file():
            art.add_file(str(train_dir / name), name=name)
    return art


def external_model_artifact(path: str):
    """A checkpoint given by path (infer.model_path): a reference, named after its folder."""
    import wandb

    art = wandb.Artifact(artifact_name("model", Path(path).name), type="model",
                         description="a checkpoint given by path, referenced (not uploaded)", metadata={"path": path})
    art.add_reference(Path(path).resolve().as_uri(), name="weights", checksum=False)
    return art


def answers_artifact(infer_dir: Path, run_name: str):
    """The infer stage's answers (FastChat model_answer files), or None when there are none."""
    import wandb

    stats = _manifest(infer_dir).get("stats", {})
    answers = infer_dir / "model_answer"
    if not answers.is_dir():
        return None
    art = wandb.Artifact(artifact_name("answers", run_name, stats.get("model_id")), type="answers",
                         description="answers to the test sets and MT-Bench (FastChat model_answer format)",
                         metadata={k: stats.get(k) for k in ("model_id", "generator", "model_path")
                                   if stats.get(k) is not None})
    _add_folder(art, answers)
    return art


def infer_model(run_dir: Path, run_name: str, model: str):
    """The model an infer stage answered with: this run's trained model, a checkpoint by path, or None (an LLM
    endpoint)."""
    stats = _manifest(Path(run_dir) / "infer").get("stats", {})
    path = stats.get("model_path")
    if not path:
        return None
    train_dir = Path(run_dir) / "train"
    trained = _manifest(train_dir).get("stats", {}).get("model_path")
    if trained and Path(trained).resolve() == Path(path).resolve():
        return model_artifact(train_dir, run_name, model)
    return external_model_artifact(path)


def selected_rows(select_dir: Path) -> tuple[list[str], list[list]]:
    """SELECTED_COLUMNS rows of select/selected.jsonl (the first TABLE_ROWS): what was chosen and why."""
    rows = []
    path = Path(select_dir) / "selected.jsonl"
    if not path.is_file():
        return SELECTED_COLUMNS, rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            if len(rows) >= TABLE_ROWS:
                break
            r = json.loads(line)
            sel, output = r.get("selection") or {}, r.get("output") or ""
            instruction = r.get("instruction", "") + (f"\n{r['input']}" if r.get("input") else "")
            rows.append([r.get("id"), instruction, output[:PREVIEW_CHARS] + ("…" if len(output) > PREVIEW_CHARS else ""),
                         len(output), has_markdown(output), sel.get("cluster"), sel.get("score"), sel.get("rank"),
                         sel.get("reason")])
    return SELECTED_COLUMNS, rows
