"""Shared fixtures: tests/ on sys.path, W&B offline, and helpers to run the pipeline against the stub server."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))

# Tests never sync to W&B and never download from a hub.
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[var] = "1"

# A shell starts background jobs (`pytest &`, nohup) with SIGINT ignored, and an ignored signal stays ignored in
# every process we spawn: the Ctrl-C tests would then wait for an exit that never comes. A handler (unlike SIG_IGN)
# is reset to the default on exec, so the children get Ctrl-C as a user's terminal would deliver it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Under pytest-xdist (`-n 2`, the README's test command) every worker gets its share of the cores for its thread pools
# (torch/OpenMP, the llama.cpp server): two workers with 2 threads each on 2 cores wait on each other at every op
# (llama.cpp: 89 s instead of 17 s for the same calls beside one busy core). Subprocesses inherit these.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _threads = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TACOS_LLM_THREADS"):
        os.environ.setdefault(var, _threads)


# Left out of the fast loop (`pytest -m "not slow and not real_llm"`, README "Set up"): each takes 10-180 s of a loaded
# 2-core machine (the run.py subprocesses of a whole chain, sweeps, LLaMA-Factory validation). CI runs them all.
SLOW = ("tests/eval/test_judge.py::test_dry_run_forecast", "tests/eval/test_judge.py::test_baselines_by_registered_name",
        "tests/eval/test_judge.py::test_clear_errors", "tests/test_experiments.py::test_multirun_dry_run_prints_the_grid",
        "tests/test_experiments.py::test_selection_is_computed_once_for_three_models",
        "tests/test_pipeline.py::test_prompt_change_invalidates_only_its_calls",
        "tests/test_pipeline.py::test_ablation_grid_multirun", "tests/test_pipeline.py::test_full_pipeline_outputs_and_resume",
        "tests/eval/test_infer.py::test_transformers_backend_fastchat_format_and_resume",
        "tests/benchmarks/test_alpaca_eval.py::test_alpaca_eval2_through_infer_and_judge_on_the_stub",
        "tests/sft/test_train_configs.py::test_paper_configs_validate_with_llamafactory_and_deepspeed",
        "tests/sft/test_train_configs.py::test_multinode_stage_validates_the_planned_world_without_gpus",
        "tests/test_rundir_integrity.py::test_damaged_outputs_are_recomputed_not_reused",
        "tests/test_wandb_lineage.py::test_pipeline_run_logs_subset_artifact_table_and_preferences",
        "tests/sft/test_train_configs.py::test_multinode_launch_is_a_static_torchrun_rendezvous")


# pytest-xdist (`-n 2 --dist loadfile --no-loadscope-reorder`, the README's test command): the tests of one file run
# in one worker, in file order, so a module-scoped fixture (a started server, a trained model, the real-LLM call cache
# that later tests read) is built once. (--dist loadgroup with xdist_group marks would split files finer, but
# xdist 3.8 sets Node._nodeid, which pytest 9.2 no longer reads: the marks are silently ignored.) Nothing else needs
# isolating: every test writes under its own tmp_path (or a uuid folder), servers and training rendezvous take free
# ports, and the process checks look at their own children (tests/test_real_llm_pipeline.py: its worker's servers).
# Under xdist the longest files come first (as measured in CI), so that no worker ends on a long file while the other
# idles; the rest keep their order.
LONGEST_FIRST = ("tests/test_real_llm_pipeline.py", "tests/test_experiments.py", "tests/sft/test_train_tiny.py",
                 "tests/test_pipeline.py", "tests/data/test_preference_pairs.py", "tests/sft/test_train_configs.py",
                 "tests/llm/test_faults_llm.py", "tests/sft/test_train_paths.py", "tests/test_rundir_integrity.py",
                 "tests/eval/test_judge_real_llm.py", "tests/llm/test_local_server.py",
                 "tests/eval/test_judge_eval_real_llm.py", "tests/test_faults_shutdown.py", "tests/eval/test_judge.py",
                 "tests/test_configs.py", "tests/eval/test_infer.py")


def _rank(item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config, items):
    """SLOW tests get `slow`; `@pytest.mark.gpu` tests run only where a CUDA GPU is visible (the device machine),
    skipped elsewhere; under xdist the longest files first."""
    for item in items:
        if item.nodeid.split("[", 1)[0] in SLOW:
            item.add_marker(pytest.mark.slow)
    if os.environ.get("PYTEST_XDIST_WORKER"):  # (a serial run keeps file order: -x stops early on quick tests)
        items.sort(key=_rank)  # stable: file order within a rank
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:  # no torch, or a CPU build
        has_gpu = False
    if not has_gpu:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


@pytest.fixture
def stub():
    """A stub OpenAI-compatible server answering TACOS prompts deterministically."""
    from stub_server import StubServer
    from tacos_responder import tacos_responder

    with StubServer(responder=tacos_responder) as server:
        yield server


def stub_overrides(stub, tmp_path: Path, llm_judge: bool = True) -> list[str]:
    """The stub as the LLM, outputs under tmp_path, no W&B, fast retries; `llm_judge`: the contrastive scorer compares
    through the stub (the default judge reads a real scoring model instead of the chat LLM)."""
    return ["llm=openai_compatible", f"llm.base_url={stub.base_url}", "llm.model=stub-judge",
            f"paths.output_dir={tmp_path / 'outputs'}", "logger=none", "client.backoff_base=0.01",
            *(["scorer/judge=llm_text"] if llm_judge else [])]


def run_cli(args: list[str], timeout: float = 600, env: dict | None = None,
            repo: Path = REPO) -> subprocess.CompletedProcess:
    """python run.py ARGS in the repo (or in a copy of it, whose tacos/ is then the one imported), no stdin, captured
    output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, str(repo / "run.py"), *args], cwd=repo, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=full_env)


# -- wall time per test file, printed at the end of every run (CI's log keeps it next to --durations) -----------------
_FILE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    _FILE_SECONDS[path] = _FILE_SECONDS.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not _FILE_SECONDS:
        return
    terminalreporter.write_sep("=", "wall time per test file (setup + call + teardown)")
    for path, seconds in sorted(_FILE_SECONDS.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{seconds:9.1f} s  {path}")
    terminalreporter.write_line(f"{sum(_FILE_SECONDS.values()):9.1f} s  total")
