"""Checks that run before anything is generated, downloaded or launched: GPUs, the base model, the training data."""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
from pathlib import Path

from tacos.paths import absolute
from tacos.records import file_sha256
from tacos.sft.recipe import DATASET_INFO, DatasetRef
from tacos.stage import StageError

log = logging.getLogger(__name__)

SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}
_WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.gguf")


def check_train_extra() -> None:
    missing = [m for m in ("llamafactory", "deepspeed") if importlib.util.find_spec(m) is None]
    if missing:
        raise StageError(f"the train stage needs {' and '.join(missing)} (the `train` extra, which moves torch to "
                         f"2.14.1): VENV=.venv-train EXTRAS=dev,train bash scripts/install.sh, then run "
                         f".venv-train/bin/python run.py ...")


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def processes_per_node(tcfg, gpus: int) -> int:
    """train.nproc_per_node, else one process per visible GPU (one CPU process without GPUs)."""
    if tcfg.nproc_per_node is not None:
        return int(tcfg.nproc_per_node)
    if gpus == 0 and not tcfg.launch:
        log.warning("train.launch=false without a GPU here and train.nproc_per_node unset: the recipe is planned and "
                    "validated for 1 process per node (world size %d). Set train.nproc_per_node to the GPUs per node "
                    "of the training machine (e.g. 8) to validate its grad-accum and DeepSpeed train_batch_size.",
                    int(tcfg.nnodes))
    return max(1, gpus)


def check_gpus(spec, tcfg, gpus: int) -> None:
    """Fail before any download or launch when this machine cannot run the model's recipe."""
    need = int(spec.gpus_required)
    if gpus < need and not tcfg.allow_cpu:
        raise StageError(
            f"model {spec.name!r} ({spec.model_name_or_path}) needs at least {need} CUDA GPU(s) for "
            f"{tcfg.finetuning_type or spec.finetuning_type} fine-tuning, but torch sees {gpus}. Run the train stage "
            f"on a GPU machine (e.g. hydra/launcher=slurm_train), try the pipeline on CPU with model=tiny, or "
            f"generate and validate the configs only with train.launch=false. Experts: train.allow_cpu=true forces it.")
    nproc = processes_per_node(tcfg, gpus)
    if gpus and nproc > gpus:
        raise StageError(f"train.nproc_per_node={nproc} but torch sees only {gpus} GPU(s) on this node")
    if (tcfg.finetuning_type or spec.finetuning_type) == "qlora":
        _check_qlora(gpus)


def _check_qlora(gpus: int) -> None:
    if importlib.util.find_spec("bitsandbytes") is None:
        raise StageError("train.finetuning_type=qlora needs bitsandbytes (pip install bitsandbytes) and a CUDA GPU; "
                         "use train.finetuning_type=lora otherwise")
    if gpus == 0:
        raise StageError("train.finetuning_type=qlora (4-bit bitsandbytes) needs a CUDA GPU; use lora on CPU")


def resolve_model(spec, models_dir: Path, required: bool = True) -> tuple[str, int | None]:
    """(local folder or hub id to train from, hidden_size). Never downloads: with HF_HUB_OFFLINE=1 (run.py's
    default) a model missing from the local cache is a clear error instead of a hang. required=False (configs
    generated but not launched): a missing model keeps its hub id."""
    if spec.builder is not None:  # a model made here (model=tiny), not downloaded
        path = spec.builder.build(absolute(models_dir) / spec.model_name_or_path)
        return str(path), _hidden_size(path, spec)
    name = os.path.expanduser(str(spec.model_name_or_path))
    if Path(name).is_dir():
        folder = absolute(name)  # LLaMA-Factory runs in the stage folder: a relative path would be a hub id there
        _check_weights(folder, name)
        return str(folder), _hidden_size(folder, spec)
    if name.startswith(("/", "./", "../", "~")) or name.count("/") != 1:
        raise StageError(f"model.model_name_or_path={name!r} is neither an existing folder nor a hub id (org/name)")
    folder = _cached_snapshot(name)
    if folder is None:
        if not required:
            return name, spec.hidden_size
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise StageError(
                f"model {name!r} is not in the local Hugging Face cache and hub downloads are off (HF_HUB_OFFLINE=1; "
                f"run.py sets it unless offline=false). Download it once on a machine with network "
                f"(`huggingface-cli download {name}`; Llama-2 is gated: accept the licence and set HF_TOKEN), "
                f"or set model.model_name_or_path to a local folder.")
        log.warning("model %s is not cached: LLaMA-Factory will download it (offline=false)", name)
        return name, spec.hidden_size
    _check_weights(folder, name)
    return str(folder), _hidden_size(folder, spec)


def _cached_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 — LocalEntryNotFoundError, or a broken cache: both mean "not usable offline"
        return None


def _check_weights(folder: Path, name: str) -> None:
    if not (folder / "config.json").is_file() or not any(any(folder.glob(p)) for p in _WEIGHTS):
        raise StageError(f"model {name!r} at {folder} has no config.json or no weight files: an incomplete "
                         f"download? Re-download it or point model.model_name_or_path at a complete folder.")


def _hidden_size(folder: Path, spec) -> int | None:
    try:
        cfg = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return spec.hidden_size
    return cfg.get("hidden_size") or cfg.get("text_config", {}).get("hidden_size") or spec.hidden_size


# -- the training data ---------------------------------------------------------------------------------------------
def resolve_dataset(source: Path, dataset_name: str | None = None) -> DatasetRef:
    """An export folder (its dataset_info.json) or a ShareGPT / Alpaca JSON file -> a dataset_info entry."""
    source = Path(source).expanduser().resolve()
    if source.is_dir():
        return _from_folder(source, dataset_name)
    if source.is_file():
        return _from_file(source, dataset_name)
    raise StageError(f"train.dataset {source} does not exist (an export folder or a ShareGPT/Alpaca JSON file)")


def _from_folder(folder: Path, dataset_name: str | None) -> DatasetRef:
    info_path = folder / DATASET_INFO
    if not info_path.is_file():
        files = sorted(p.name for p in folder.glob("*.json"))
        raise StageError(f"{folder} has no {DATASET_INFO}: pass an export folder or one of its JSON files "
                         f"(train.dataset=<file>); JSON files there: {files}")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if dataset_name is None:
        dataset_name = next((k for k, v in info.items() if v.get("formatting") == "sharegpt"), next(iter(info), None))
    if dataset_name not in info:
        raise StageError(f"train.dataset_name={dataset_name!r} is not in {info_path}; entries: {sorted(info)}")
    entry = dict(info[dataset_name])
    file = (folder / entry["file_name"]).resolve()
    if not file.is_file():
        raise StageError(f"{info_path} entry {dataset_name!r} points at {file}, which does not exist")
    entry["file_name"] = str(file)
    return DatasetRef(dataset_name, file, entry, len(load_rows(file)))


def _from_file(file: Path, dataset_name: str | None) -> DatasetRef:
    rows = load_rows(file)
    if not rows:
        raise StageError(f"train.dataset {file} holds no rows")
    first = rows[0]
    if "conversations" in first:
        entry = {"file_name": str(file), "formatting": "sharegpt", "columns": {"messages": "conversations"},
                 "tags": SHAREGPT_TAGS}
    elif "messages" in first:
        entry = {"file_name": str(file), "formatting": "sharegpt", "columns": {"messages": "messages"},
                 "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                          "assistant_tag": "assistant"}}
    elif "instruction" in first and "output" in first:
        entry = {"file_name": str(file), "columns": {"prompt": "instruction", "query": "input", "response": "output"}}
    else:
        raise StageError(f"train.dataset {file}: rows must be ShareGPT ({{'conversations': [{{'from', 'value'}}]}}), "
                         f"OpenAI messages or Alpaca (instruction/input/output); the first row has keys {sorted(first)}")
    name = dataset_name or re.sub(r"[^A-Za-z0-9_.-]+", "_", file.stem).strip("_") or "tacos_subset"
    return DatasetRef(name, file, entry, len(rows))


def load_rows(file: Path) -> list[dict]:
    text = file.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise StageError(f"train.dataset {file} is neither a JSON array nor JSON Lines: {e}") from e
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise StageError(f"train.dataset {file} must hold a list of objects")
    return data


def dataset_sha256(data: DatasetRef) -> str:
    return file_sha256(data.file)
