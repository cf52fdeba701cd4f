"""Write the two stand-in wheels of a CPU install (scripts/install.sh, TORCH=cpu) into a folder.

Why: LLaMA-Factory 0.9.5 requires torchvision and torchaudio, but PyPI's x86_64 builds of both are CUDA builds that
do not load beside CPU torch 2.13.0 (torchvision: "operator torchvision::nms does not exist", and its mere presence
breaks `from transformers import PreTrainedModel`; torchaudio: needs libtorch_cuda.so). Text SFT never uses either,
except that llamafactory/data/mm_plugin.py does a top-level `import torchaudio`. So a CPU install gets:
- torchvision 0.28.0+tacos.standin: metadata only, no module. transformers finds no `torchvision` module and treats
  it as absent, which is what it is; `pip check` sees LLaMA-Factory's requirement met.
- torchaudio 2.13.0+tacos.standin: a module whose functions raise (audio inputs are unsupported on a CPU install).
The `+tacos.standin` local version says what they are in `pip list`. TORCH=cuda installs the real ones instead.

    python scripts/cpu_stand_ins.py OUT_DIR
"""
from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

TORCHAUDIO_MODULE = '''"""Stand-in for torchaudio on a CPU install of TACOS (scripts/cpu_stand_ins.py): audio is not supported."""
__version__ = "2.13.0+tacos.standin"
_WHY = ("torchaudio stand-in: audio inputs are not supported on a CPU install of TACOS "
        "(install with TORCH=cuda bash scripts/install.sh for the real torchaudio)")


def load(*args, **kwargs):
    raise RuntimeError(_WHY)


def info(*args, **kwargs):
    raise RuntimeError(_WHY)


class functional:  # noqa: N801  (llamafactory calls torchaudio.functional.resample)
    @staticmethod
    def resample(*args, **kwargs):
        raise RuntimeError(_WHY)
'''

STAND_INS = {  # name: (version, summary, files)
    "torchvision": ("0.28.0+tacos.standin",
                    "Metadata-only stand-in for torchvision on a CPU install of TACOS (no module: images unsupported)",
                    {}),
    "torchaudio": ("2.13.0+tacos.standin",
                   "Stand-in for torchaudio on a CPU install of TACOS (functions raise: audio unsupported)",
                   {"torchaudio/__init__.py": TORCHAUDIO_MODULE}),
}


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def write_wheel(out: Path, name: str, version: str, summary: str, files: dict[str, str]) -> Path:
    info = f"{name}-{version}.dist-info"
    contents = {path: text.encode() for path, text in files.items()}
    contents[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                    f"Summary: {summary}\n").encode()
    contents[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: tacos-cpu-stand-ins\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [_record_line(p, d) for p, d in contents.items()] + [f"{info}/RECORD,,"]
    contents[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = out / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in contents.items():
            zi = zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0))  # fixed: the same bytes every time
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, data)
    return wheel


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, (version, summary, files) in STAND_INS.items():
        write_wheel(out, name, version, summary, files)


if __name__ == "__main__":
    main(sys.argv[1])
