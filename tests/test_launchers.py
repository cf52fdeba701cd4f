"""The Hydra launcher configs (conf/hydra/launcher): composed with Hydra's compose API, instantiated into the plugins'
own launcher classes (the YAML matches the plugin's schema), the SLURM ones rendered into the sbatch script submitit
would submit (only the submission is stubbed: there is no cluster here), and real multiruns of the data stage
through submitit's local executor and, where the `ray` extra is installed, a local Ray instance.

Plugins: `pip install -e .[sweep]` (submitit, joblib) and `pip install -e .[ray]` (hydra-ray-launcher); a test whose
plugin is missing is skipped.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

import tacos.config  # noqa: F401  (registers the tacos_root resolver)

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
LAUNCHERS = CONF / "hydra" / "launcher"
SWEEP = ["hydra.sweep.subdir=${hydra.job.num}"]
QUICK = ["stages=[data]", "logger=none"]  # the data stage only: no LLM, well under a second per job


def compose_hydra(tmp_path: Path, overrides: list[str]):
    """The full config as `python run.py -m OVERRIDES` would compose it, hydra node included."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="run"):
        return compose(config_name="config", return_hydra_config=True,
                       overrides=[f"paths.output_dir={tmp_path}", f"hydra.sweep.dir={tmp_path / 'sweep'}", *overrides])


def run_py(args: list[str], cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=env, check=False)


def test_every_launcher_file_extends_a_plugin_config_under_its_own_name():
    """A file named like the plugin's stored config would trigger Hydra's deprecated automatic schema matching
    (ray.yaml with `defaults: [ray]` even includes itself: RecursionError)."""
    stored = {"submitit_slurm", "submitit_local", "joblib", "ray", "ray_aws", "basic"}
    files = sorted(LAUNCHERS.glob("*.yaml"))
    assert {p.stem for p in files} >= {"slurm", "slurm_train", "slurm_train_multinode", "ray_cluster"}
    for path in files:
        assert path.stem not in stored, path
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# @package hydra.launcher\n"), path
        assert "python run.py -m hydra/launcher=" in text, f"{path.name}: no documented usage"
        body = yaml.safe_load(text)
        assert body["defaults"][-1] == "_self_" and "_target_" not in body, path


# -- SLURM (hydra-submitit-launcher) ---------------------------------------------------------------------------------
@pytest.fixture
def sbatch(monkeypatch):
    """Run SlurmLauncher.launch for real up to the submission: the sbatch script submitit renders is captured
    instead of being passed to sbatch, and the jobs "return" at once."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from submitit.slurm.slurm import SlurmExecutor

    captured: dict = {}

    class _Done:
        def results(self):
            return ["done"]

    def fake_submissions(self, delayed):
        array_ex = SlurmExecutor(self.folder, self.max_num_timeout)  # as submitit does for an array
        array_ex.update_parameters(**self.parameters)
        if len(delayed) > 1:
            array_ex.parameters["map_count"] = len(delayed)
        captured.update(script=array_ex._make_submission_file_text(self._submitit_command_str, "uid"),
                        max_num_timeout=self.max_num_timeout, jobs=len(delayed))
        return [_Done() for _ in delayed]

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # "srun is here"
    monkeypatch.setattr(SlurmExecutor, "_internal_process_submissions", fake_submissions)

    def render(cfg, points: list[list[str]]) -> dict:
        launcher = instantiate(cfg.hydra.launcher)
        launcher.setup(hydra_context=None, task_function=None, config=cfg)
        assert launcher.launch(points, initial_job_idx=0) == ["done"] * len(points)
        return captured

    return render


def _sbatch_lines(script: str) -> set[str]:
    return {line.strip() for line in script.splitlines() if line.startswith("#SBATCH")}


def test_slurm_selection_jobs(tmp_path, sbatch):
    cfg = compose_hydra(tmp_path, ["hydra/launcher=slurm", "hydra.launcher.partition=cpu", *SWEEP])
    hl = cfg.hydra.launcher
    assert hl._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (hl.nodes, hl.tasks_per_node, hl.cpus_per_task, hl.mem_gb, hl.gpus_per_node) == (1, 1, 8, 32, None)
    assert hl.max_num_timeout >= 1 and hl.array_parallelism == 16
    out = sbatch(cfg, [[f"seed={i}"] for i in range(20)])
    lines = _sbatch_lines(out["script"])
    assert {"#SBATCH --cpus-per-task=8", "#SBATCH --mem=32GB", "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1",
            "#SBATCH --partition=cpu", "#SBATCH --time=1440", "#SBATCH --signal=USR2@120",
            "#SBATCH --array=0-19%16", "#SBATCH --job-name=run"} <= lines, lines
    assert not any("gpu" in line for line in lines)  # no GPU requested
    assert out["max_num_timeout"] == hl.max_num_timeout
    assert f"--output={tmp_path / 'sweep'}/.submitit/" in out["script"]  # logs next to the sweep on the shared fs


def test_slurm_train_single_node(tmp_path, sbatch):
    cfg = compose_hydra(tmp_path, ["hydra/launcher=slurm_train", "model=llama2_7b", "stages=[train]"])
    hl = cfg.hydra.launcher
    assert (hl.nodes, hl.tasks_per_node, hl.gpus_per_node, hl.cpus_per_task, hl.mem_gb) == (1, 1, 8, 64, 480)
    assert cfg.train.nproc_per_node is None  # torchrun starts one process per visible GPU (8)
    out = sbatch(cfg, [[f"model={m}"] for m in ("llama2_7b", "llama2_13b", "mistral7b", "tiny")])
    lines = _sbatch_lines(out["script"])
    assert {"#SBATCH --gpus-per-node=8", "#SBATCH --cpus-per-task=64", "#SBATCH --mem=480GB", "#SBATCH --nodes=1",
            "#SBATCH --ntasks-per-node=1", "#SBATCH --time=4320", "#SBATCH --array=0-3%3"} <= lines, lines
    assert out["max_num_timeout"] == 3  # requeued after a timeout; the train stage resumes from its checkpoint


def test_slurm_train_multinode(tmp_path, sbatch, monkeypatch):
    overrides = ["hydra/launcher=slurm_train_multinode", "model=llama2_13b", "stages=[train]",
                 f"train.dataset={tmp_path}/export", "train.output_dir=" + str(tmp_path) + "/train/${model.name}",
                 "train.nnodes=2", "train.master_port=29500", "train.master_addr=${oc.env:MASTER_ADDR}",
                 "train.node_rank=${oc.env:SLURM_NODEID}",
                 "hydra.sweep.subdir=${hydra.job.num}_${run_name}/node${oc.env:SLURM_NODEID}"]
    cfg = compose_hydra(tmp_path, overrides)  # the header's command line
    hl = cfg.hydra.launcher
    assert (hl.nodes, hl.tasks_per_node, hl.gpus_per_node, hl.max_num_timeout) == (2, 1, 8, 3)
    assert cfg.train.nnodes == hl.nodes
    script = sbatch(cfg, [["model=llama2_13b"]])["script"]
    assert {"#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=8"} <= _sbatch_lines(script)
    export, srun = script.index("export MASTER_ADDR=$(scontrol show hostnames"), script.index("\nsrun ")
    assert export < srun  # set once in the batch script, inherited by the task on every node

    # what each node's task resolves: its own node rank and run dir, the same rendezvous point and output_dir
    cfg.hydra.job.num = 0  # set by the launcher in the task, as here
    seen = []
    for node in ("0", "1"):
        monkeypatch.setenv("SLURM_NODEID", node)
        monkeypatch.setenv("MASTER_ADDR", "gpu-node-17")
        tcfg = instantiate(cfg.train)
        tcfg.validate()
        seen.append((tcfg.node_rank, tcfg.master_addr, tcfg.master_port, tcfg.output_dir,
                     OmegaConf.select(cfg, "hydra.sweep.subdir").rsplit("/", 1)[1]))
    assert seen == [(0, "gpu-node-17", 29500, f"{tmp_path}/train/llama2_13b", "node0"),
                    (1, "gpu-node-17", 29500, f"{tmp_path}/train/llama2_13b", "node1")]
    assert all(isinstance(s[0], int) for s in seen)  # the environment's string, as an int


def test_submitit_multirun_runs_the_pipeline(tmp_path):
    """A real multirun through hydra-submitit-launcher (its local executor: same pickling of run.py's task function
    and the launcher, same job environment and requeue machinery as on SLURM, minus sbatch)."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    out = run_py(["-m", "hydra/launcher=submitit_local", *QUICK, "dataset.limit=4,5", f"paths.output_dir={tmp_path}",
                  f"hydra.sweep.dir={tmp_path / 'sweep'}", *SWEEP, "hydra.launcher.timeout_min=5"])
    assert out.returncode == 0, out.stderr[-3000:]
    manifests = sorted((tmp_path / "sweep").glob("*/data/manifest.json"))
    assert [p.parent.parent.name for p in manifests] == ["0", "1"]
    assert list((tmp_path / "sweep" / ".submitit").iterdir())  # submitit's job folders: logs + pickles


def test_launcher_resolves_on_the_command_line(tmp_path):
    """`python run.py hydra/launcher=slurm --cfg all -p hydra.launcher --resolve` (no -m: Hydra refuses --cfg with
    --multirun) composes and resolves the launcher as a multirun would, without submitting anything."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    out = run_py(["hydra/launcher=slurm", f"paths.output_dir={tmp_path}", "--cfg", "all", "-p", "hydra.launcher",
                  "--resolve"])
    assert out.returncode == 0, out.stderr[-2000:]
    launcher = yaml.safe_load(out.stdout)
    assert launcher["_target_"].endswith("SlurmLauncher") and launcher["cpus_per_task"] == 8
    assert launcher["submitit_folder"].startswith(f"{tmp_path}/multirun/")


# -- Ray (hydra-ray-launcher) ----------------------------------------------------------------------------------------
def test_ray_cluster_config_file():
    """Readable without the plugin: local or existing-cluster mode, per-job resources, the #2893 workaround."""
    body = yaml.safe_load((LAUNCHERS / "ray_cluster.yaml").read_text(encoding="utf-8"))
    assert body["defaults"] == ["ray", "_self_"]  # the plugin's local/existing-cluster launcher, not ray_aws
    assert body["ray"]["init"] == {"address": None, "object_store_memory": None}
    assert body["ray"]["remote"] == {"num_cpus": 4, "num_gpus": 0, "max_calls": 1}


def test_ray_launcher_instantiates_and_joins_a_cluster_without_object_store_memory(tmp_path, monkeypatch):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    cfg = compose_hydra(tmp_path, ["hydra/launcher=ray_cluster", "hydra.launcher.ray.init.address=auto"])
    # imported after composing: Hydra's first plugin scan re-executes every hydra_plugins module (new classes)
    from hydra_plugins.hydra_ray_launcher import _launcher_util
    from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher

    assert cfg.hydra.launcher._target_ == "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    launcher = instantiate(cfg.hydra.launcher)
    assert isinstance(launcher, RayLauncher)
    assert OmegaConf.to_container(launcher.ray_cfg.remote) == {"num_cpus": 4, "num_gpus": 0, "max_calls": 1}
    # what the plugin's launch() does before ray.init: its CI default must not reach ray.init when joining a cluster
    launcher.ray_cfg.init.setdefault("object_store_memory", 78643200)
    calls = []
    monkeypatch.setattr(_launcher_util.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(_launcher_util.ray, "init", lambda **kw: calls.append(kw))
    _launcher_util.start_ray(launcher.ray_cfg.init)
    assert calls == [{"address": "auto", "object_store_memory": None}]


def test_ray_multirun_runs_the_pipeline(tmp_path):
    """A real multirun on a Ray instance started for it (~20 s, most of it Ray's own start-up)."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    out = run_py(["-m", "hydra/launcher=ray_cluster", "hydra.launcher.ray.remote.num_cpus=1", *QUICK,
                  "dataset.limit=4,5", f"paths.output_dir={tmp_path}", f"hydra.sweep.dir={tmp_path / 'sweep'}", *SWEEP,
                  "+hydra.launcher.ray.init.include_dashboard=false"], timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    manifests = sorted((tmp_path / "sweep").glob("*/data/manifest.json"))
    assert [p.parent.parent.name for p in manifests] == ["0", "1"]
