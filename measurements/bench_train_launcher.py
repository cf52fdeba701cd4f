"""Wall-time overhead of the train stage's launcher vs calling `llamafactory-cli train` directly, same YAML and env.

    .venv-train/bin/python measurements/bench_train_launcher.py                 # tiny model, 50 rows, 3 pairs of runs
    .venv-train/bin/python measurements/bench_train_launcher.py --repeats 5 --max-steps 8

Both sides run the YAML the stage generates for model=tiny (DeepSpeed ZeRO-3 on the CPU accelerator), with the
environment the stage builds (FORCE_TORCHRUN, NPROC_PER_NODE, DS_ACCELERATOR, PATH). Direct: subprocess.run with
stdout to a file. Launcher: tacos.sft.launch.train (own process group, line streaming to train.log and our logger,
tqdm throttling). Runs alternate (direct, launcher, direct, ...) and medians are compared; the target is <= 5 %.
The stage's pre-launch validation (a child process importing LLaMA-Factory) is timed separately: it is a fixed cost
paid once per stage, not part of the launch.
"""
from __future__ import annotations

import argparse
import gzip
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from hydra.utils import instantiate  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from tacos.data.formats import wrap_alpaca_one_line as alpaca_one_line  # noqa: E402
from tacos.sft import launch, preflight, recipe  # noqa: E402
from tacos.sft.spec import TrainConfig  # noqa: E402
from tacos.sft.validate import ValidationJob, validate_recipe  # noqa: E402


def subset(path: Path, n: int) -> Path:
    """The first n rows of the bundled sample as a ShareGPT export."""
    with gzip.open(REPO / "data/sample/alpaca_sample.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(next(f)) for _ in range(n)]
    conv = [{"id": str(i), "score": "", "conversations": [
        {"from": "human", "value": alpaca_one_line(r["instruction"], r["input"])}, {"from": "gpt", "value": r["output"]}]}
        for i, r in enumerate(rows)]
    path.write_text(json.dumps(conv), encoding="utf-8")
    return path


def prepare(work: Path, rows: int, max_steps: int | None) -> tuple[Path, Path, dict, int]:
    """(train.yaml, output_dir, env, hidden_size) for the tiny model, as the stage generates them on CPU."""
    spec = instantiate(OmegaConf.load(REPO / "conf/model/tiny.yaml"))
    tcfg = TrainConfig(save_strategy="no", max_steps=max_steps)
    model_path, hidden = preflight.resolve_model(spec, work / "models")
    data = preflight.resolve_dataset(subset(work / "subset.json", rows))
    plan = recipe.batch_plan(spec, 1)
    ds = recipe.deepspeed_config(recipe.deepspeed_kind(spec, tcfg))
    out = work / "train_output"
    args = recipe.llamafactory_args(spec, tcfg, model_path=model_path, data=data, output_dir=out, plan=plan,
                                    deepspeed_file="ds_z3.json", run_name="bench", report_to="none", seed=0)
    recipe.adapt_to_cpu(args, ds)
    args["overwrite_output_dir"] = True
    files = recipe.write_recipe(work / "stage", args, ds, data)
    env = launch.launch_env(nproc_per_node=1, nnodes=1, node_rank=0, master_addr="127.0.0.1", master_port=None,
                            cpu=True, wandb=None)
    return files["yaml"], out, env, hidden


def direct(yaml_file: Path, env: dict, log_file: Path) -> float:
    t0 = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as f:
        rc = subprocess.run([launch.llamafactory_cli(), "train", yaml_file.name], cwd=yaml_file.parent, env=env,
                            stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False).returncode
    if rc != 0:
        raise SystemExit(f"direct llamafactory-cli failed (rc {rc}), see {log_file}")
    return time.perf_counter() - t0


def replay_cost(log_file: Path, repeats: int = 20) -> dict:
    """The launcher's own cost, free of training noise: a recorded training log piped through run_streaming
    (process group, line reading, train.log, logger) vs the same bytes written straight to a file."""
    lines = log_file.read_text(encoding="utf-8").count("\n")
    cmd = ["cat", str(log_file)]
    t = {"direct": [], "launcher": []}
    for i in range(repeats):
        t0 = time.perf_counter()
        with open(log_file.with_suffix(".replay_direct"), "w") as f:
            subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=True)
        t["direct"].append(time.perf_counter() - t0)
        replay = log_file.with_suffix(".replay_launcher")
        replay.unlink(missing_ok=True)
        t0 = time.perf_counter()
        launch.run_streaming(cmd, cwd=log_file.parent, env={"PATH": "/usr/bin:/bin"}, log_file=replay)
        t["launcher"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in t.items()}
    return {"log_lines": lines, "direct_ms": round(1000 * med["direct"], 2), "launcher_ms": round(1000 * med["launcher"], 2),
            "added_ms": round(1000 * (med["launcher"] - med["direct"]), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="pairs of runs (direct + launcher)")
    ap.add_argument("--rows", type=int, default=50)
    ap.add_argument("--max-steps", type=int, default=None, help="default: the tiny recipe (2 epochs = 26 steps)")
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_train_"))
    # the stage's logger as in a run: INFO lines into a file
    logging.basicConfig(filename=work / "tacos.log", level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    try:
        yaml_file, out, env, hidden = prepare(work, a.rows, a.max_steps)
        t0 = time.perf_counter()
        validate_recipe(ValidationJob(str(yaml_file), 1, hidden, cpu=True), work / "stage")
        validation_s = time.perf_counter() - t0
        times: dict[str, list[float]] = {"direct": [], "launcher": []}
        for i in range(a.repeats):
            for side in ("direct", "launcher"):
                shutil.rmtree(out, ignore_errors=True)
                log_file = work / f"{side}_{i}.log"
                s = direct(yaml_file, env, log_file) if side == "direct" else launch.train(yaml_file, env=env,
                                                                                        log_file=log_file)
                times[side].append(s)
                print(f"run {i + 1}/{a.repeats} {side:<8} {s:7.2f} s", flush=True)
        steps = yaml.safe_load(yaml_file.read_text()).get("max_steps") or "2 epochs"
        med = {k: statistics.median(v) for k, v in times.items()}
        result = {"rows": a.rows, "steps": steps, "repeats": a.repeats, "direct_s": times["direct"],
                  "launcher_s": times["launcher"], "median_direct_s": round(med["direct"], 2),
                  "median_launcher_s": round(med["launcher"], 2),
                  "overhead_pct": round(100 * (med["launcher"] - med["direct"]) / med["direct"], 2),
                  "validation_s": round(validation_s, 2)}
        result["replay"] = replay_cost(max(work.glob("direct_*.log"), key=lambda p: p.stat().st_size))
        result["replay_overhead_pct_of_median_run"] = round(100 * result["replay"]["added_ms"] / 1000 / med["direct"], 3)
        print(json.dumps(result, indent=1))
        print(f"launcher overhead: {result['overhead_pct']:+.2f} % (median {med['launcher']:.2f} s vs "
              f"{med['direct']:.2f} s direct; target <= 5 %); pre-launch validation {validation_s:.1f} s once per stage")
        print(f"launcher's own cost on a replayed {result['replay']['log_lines']}-line training log: "
              f"{result['replay']['added_ms']:+.1f} ms ({result['replay_overhead_pct_of_median_run']:+.3f} % of a run)")
        if a.out:
            a.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
