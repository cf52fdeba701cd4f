"""Stage `infer`: answers in FastChat's model_answer format from the tiny local model (transformers, CPU), from an
OpenAI-compatible endpoint (the stub) and from vLLM (a stand-in module); resume by question id; the generators as
config objects (infer/generator=...); clear errors."""
from __future__ import annotations

import importlib.util
import json
import re
import sys
import types
from pathlib import Path

import pytest

from conftest import REPO, run_cli, stub_overrides
from tacos.data.benchmark_sets import load_mt_bench, load_test_set
from tacos.answers.jobs import AnswerJob, InferSpec, WorkFile, make_jobs, question_seed
from tacos.benchmarks.mt_bench import MTBenchBenchmark
from tacos.benchmarks.pairwise import PairwiseBenchmark
from tacos.paths import BUNDLED_DATA_DIR
from tacos.answers.generators import EndpointGenerator, TransformersGenerator, VllmGenerator
from tacos.data.formats import wrap_alpaca_one_line as alpaca_one_line

# conf/config.yaml lists `- infer: default` once the lead adds it; until then the group is appended here.
INFER = "infer=default" if re.search(r"^\s*-\s*infer:", (REPO / "conf" / "config.yaml").read_text(), re.M) \
    else "+infer=default"
FASTCHAT_KEYS = {"question_id", "answer_id", "model_id", "choices", "tstamp"}
# LLaMA-Factory's llama2 template, as a checkpoint trained with `template: llama2` carries it.
LLAMA2_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} "
                   "[/INST]{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """(the tiny Llama folder, a chat template file): the untrained model has no template of its own."""
    from tacos.sft.tiny_model import ensure_tiny_llama

    root = tmp_path_factory.mktemp("tiny")
    template = root / "llama2.jinja"
    template.write_text(LLAMA2_TEMPLATE, encoding="utf-8")
    return ensure_tiny_llama(root / "tiny-llama"), template


def answers(run_dir: Path, bench: str) -> list[dict]:
    files = list((run_dir / "infer" / "model_answer" / bench).glob("*.jsonl"))
    assert len(files) == 1, files
    return [json.loads(line) for line in files[0].read_text().splitlines()]


def local_args(tiny, run_dir: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [INFER, "stages=[infer]", f"infer.chat_template={tiny[1]}", "infer.max_new_tokens=6",
            "benchmarks.mt_bench.max_new_tokens=6", "infer.model_id=tiny-test", "logger=none",
            f"paths.output_dir={tmp_path / 'outputs'}", f"hydra.run.dir={run_dir}", *extra]


def test_jobs_wrap_prompts_like_training_and_seed_per_question():
    """The benchmarks say what is asked and how (MT-Bench: its categories' temperatures, 1024 tokens, two turns);
    infer wraps the first turn as in training and falls back on its own sampling."""
    spec = InferSpec()
    q = load_test_set("sinstruct", 1)[0]
    asked = PairwiseBenchmark(test_sets=["sinstruct"]).answer_jobs(BUNDLED_DATA_DIR, 1)
    job = make_jobs(spec, asked, seed=0)["sinstruct"][0]
    assert q.input and job.turns == (alpaca_one_line(q.instruction, q.input),)
    assert (job.temperature, job.max_new_tokens) == (0.7, 512)
    mt_bench = MTBenchBenchmark(temperatures={"writing": 0.7, "math": 0.0})
    mt = make_jobs(spec, mt_bench.answer_jobs(BUNDLED_DATA_DIR, None), seed=0)["mt_bench"]
    first = mt[0]
    assert first.turns[0] == alpaca_one_line(load_mt_bench(1)[0].turns[0], "") and len(first.turns) == 2
    assert first.turns[1] == load_mt_bench(1)[0].turns[1]  # later turns stay raw, as in the exported data
    assert {j.temperature for j in mt} == {0.7, 0.0} and first.max_new_tokens == 1024
    assert len({j.seed for j in mt}) == len(mt) and first.seed == question_seed(0, "mt_bench", first.question_id)
    raw = make_jobs(InferSpec(wrap_first_turn=False), mt_bench.answer_jobs(BUNDLED_DATA_DIR, 1), 0)["mt_bench"][0]
    assert raw.turns == tuple(load_mt_bench(1)[0].turns)
    with pytest.raises(ValueError, match="two benchmarks ask mt_bench/81 differently"):
        make_jobs(spec, [*mt_bench.answer_jobs(BUNDLED_DATA_DIR, 1),
                         *MTBenchBenchmark(max_new_tokens=5).answer_jobs(BUNDLED_DATA_DIR, 1)], 0)


def test_work_file_skips_a_line_cut_by_a_kill(tmp_path):
    work = WorkFile(tmp_path / "w")
    job = AnswerJob("koala", "koala_0", ("hi",), 0.7, 1.0, 8, 1)
    work.append(job, ["hello"])
    with open(work.path("koala"), "a") as f:
        f.write('{"job": "cut mid-wri')
    assert [r["turns"] for r in work.load("koala").values()] == [["hello"]]


def test_transformers_backend_fastchat_format_and_resume(tiny, tmp_path):
    run_dir = tmp_path / "run"
    # infer.model_path unset: the model folder named by this run's train manifest.
    (run_dir / "train").mkdir(parents=True)
    (run_dir / "train" / "manifest.json").write_text(json.dumps(
        {"stage": "train", "status": "complete", "output_hash": "t", "stats": {"model_path": str(tiny[0])}}))
    out = run_cli(local_args(tiny, run_dir, tmp_path, "benchmarks.pairwise.test_sets=[koala,sinstruct]",
                             "infer.limit=1"))
    assert out.returncode == 0, out.stderr[-3000:]
    man = json.loads((run_dir / "infer" / "manifest.json").read_text())
    assert man["counts"] == {"generated": 3, "resumed": 0, "missing": 0, "koala": 1, "sinstruct": 1, "mt_bench": 1}
    assert man["stats"]["device"] == "cpu" and man["stats"]["new_tokens"] > 0 and man["tables"]["answers"]
    for bench, n_turns in (("koala", 1), ("sinstruct", 1), ("mt_bench", 2)):
        rows = answers(run_dir, bench)
        assert len(rows) == 1 and set(rows[0]) == FASTCHAT_KEYS
        row = rows[0]
        assert row["model_id"] == "tiny-test" and len(row["answer_id"]) == 22 and isinstance(row["tstamp"], float)
        assert row["choices"][0]["index"] == 0 and len(row["choices"][0]["turns"]) == n_turns
        assert all(isinstance(t, str) for t in row["choices"][0]["turns"])
    assert answers(run_dir, "mt_bench")[0]["question_id"] == 81  # an int, as FastChat's question.jsonl
    assert answers(run_dir, "koala")[0]["question_id"] == "koala_0"

    # Resume: the work file holds one answer per set (edited, so a regeneration would show); a kill cut the next line.
    work = next((run_dir / ".infer_work").iterdir())
    koala = work / "koala.jsonl"
    row = json.loads(koala.read_text())
    koala.write_text(json.dumps({**row, "turns": ["PREFILLED"]}) + "\n" + '{"job": "cut')
    # The same model named explicitly: the work folder is keyed by the model's content, so the answers are found.
    out = run_cli(local_args(tiny, run_dir, tmp_path, "benchmarks.pairwise.test_sets=[koala,sinstruct]",
                             "infer.limit=3", f"infer.model_path={tiny[0]}"))
    assert out.returncode == 0, out.stderr[-3000:]
    man = json.loads((run_dir / "infer" / "manifest.json").read_text())
    assert man["counts"]["resumed"] == 3 and man["counts"]["generated"] == 6
    assert [len(answers(run_dir, b)) for b in ("koala", "sinstruct", "mt_bench")] == [3, 3, 3]
    assert answers(run_dir, "koala")[0]["choices"][0]["turns"] == ["PREFILLED"]
    assert [r["question_id"] for r in answers(run_dir, "koala")] == ["koala_0", "koala_1", "koala_2"]


def test_openai_backend_through_the_client_cache(stub, tmp_path):
    base = [INFER, *stub_overrides(stub, tmp_path), "stages=[infer]", "infer/generator=openai", "infer.limit=2",
            "benchmarks.pairwise.test_sets=[vicuna]"]
    out = run_cli([*base, f"hydra.run.dir={tmp_path / 'a'}"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert stub.count == 2 + 2 * 2  # vicuna x2, MT-Bench x2 questions x 2 turns
    second_turns = [r for r in stub.requests if len(r["messages"]) == 3]
    assert len(second_turns) == 2
    mt = {r["question_id"]: r["choices"][0]["turns"] for r in answers(tmp_path / "a", "mt_bench")}
    q81 = load_mt_bench(1)[0]
    turn2 = next(r for r in second_turns if r["messages"][2]["content"] == q81.turns[1])
    assert [m["role"] for m in turn2["messages"]] == ["user", "assistant", "user"]
    assert turn2["messages"][0]["content"] == alpaca_one_line(q81.turns[0], "")
    assert turn2["messages"][1]["content"] == mt[81][0]  # turn 2 is asked after the model's own turn-1 answer
    assert turn2["temperature"] == 0.7 and turn2["max_tokens"] == 1024  # category "writing"
    first = answers(tmp_path / "a", "vicuna")

    out = run_cli([*base, f"hydra.run.dir={tmp_path / 'b'}"])  # a fresh run dir: every answer from the cache
    assert out.returncode == 0, out.stderr[-3000:]
    assert stub.count == 6
    assert answers(tmp_path / "b", "vicuna") == first
    man = json.loads((tmp_path / "b" / "infer" / "manifest.json").read_text())
    assert man["llm"]["calls"] == 0 and man["llm"]["cache_hits"] == 6


def test_vllm_backend_batches_turns_with_per_question_seeds(tiny, monkeypatch):
    from tacos.answers.backends import VllmBackend

    calls = []

    class FakeLLM:
        def __init__(self, model, dtype, seed, **options):
            self.options = options

        def generate(self, prompts, params, use_tqdm):
            calls.append((prompts, params))
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f" answer {p.seed} ", token_ids=[1, 2])])
                    for p in params]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=FakeLLM, SamplingParams=types.SimpleNamespace))
    model, template = tiny
    backend = VllmBackend(model, str(template), options={"max_model_len": 512}, seed=0)
    jobs = [AnswerJob("mt_bench", "81", ("first", "second"), 0.7, 1.0, 8, 11),
            AnswerJob("koala", "koala_0", ("only",), 0.0, 1.0, 8, 22)]
    out = {j.question_id: a for j, a, _ in backend.generate(jobs)}
    assert out == {"81": ["answer 11", "answer 12"], "koala_0": ["answer 22"]}
    assert [len(p) for p, _ in calls] == [2, 1]  # turn 1 of both questions in one batch, then turn 2
    turn2 = backend.tokenizer.decode(calls[1][0][0]["prompt_token_ids"])
    assert "first" in turn2 and "answer 11" in turn2 and turn2.rstrip().endswith("[/INST]")
    assert backend.stats() == {"new_tokens": 6, "truncated_prompts": 0}


def test_clear_errors(tmp_path):
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(ValueError, match="vllm package"):
            InferSpec(generator=VllmGenerator()).validate()
    local = TransformersGenerator()
    with pytest.raises(ValueError, match="not a local model folder"):
        InferSpec(generator=local, model_path=str(tmp_path)).validate()
    InferSpec(generator=EndpointGenerator(), model_path=str(tmp_path)).validate()  # an endpoint loads no folder
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="LoRA adapter only"):
        InferSpec(generator=local, model_path=str(tmp_path)).validate()
    with pytest.raises(ValueError, match="unknown"):
        PairwiseBenchmark(test_sets=["koala", "nope"]).validate()
    with pytest.raises(ValueError, match=r"infer.generator.dtype must be one of .* not 'fp8'"):
        InferSpec(generator=TransformersGenerator(dtype="fp8")).validate()
    for generator in (None, "openai"):  # no generator, or a name where the object belongs (infer.generator=openai)
        with pytest.raises(ValueError, match="infer.generator must be a generator object.*infer/generator="):
            InferSpec(generator=generator).validate()
    out = run_cli([INFER, "stages=[infer]", "logger=none", f"hydra.run.dir={tmp_path / 'r'}"])
    assert out.returncode != 0 and "train" in out.stderr and "Traceback" not in out.stderr


def test_generators_are_chosen_by_config_group():
    """infer/generator=transformers|vllm|openai picks the class by its _target_; what the stage asks of each."""
    from test_configs import compose_cfg
    from hydra.utils import instantiate

    from tacos.stages.infer import STAGE

    expected = {"transformers": (TransformersGenerator, True, False), "vllm": (VllmGenerator, True, False),
                "openai": (EndpointGenerator, False, True)}
    for option, (cls, needs_checkpoint, uses_llm) in expected.items():
        cfg = compose_cfg([INFER, f"infer/generator={option}", "stages=[infer]"])
        spec = instantiate(cfg.infer, _convert_="all")
        assert type(spec.generator) is cls
        assert (spec.generator.needs_checkpoint, spec.generator.uses_llm) == (needs_checkpoint, uses_llm)
        assert STAGE.requires(cfg) == (["train"] if needs_checkpoint else []) and STAGE.uses_llm(cfg) == uses_llm
    assert compose_cfg([INFER]).infer.generator._target_.endswith("TransformersGenerator")  # the default
    spec = instantiate(compose_cfg([INFER, "infer.generator.device=cpu", "infer.generator.dtype=float32"]).infer,
                       _convert_="all")
    assert spec.generator.identity() == {"backend": "transformers", "dtype": "float32", "device": "cpu"}


def test_registry_keeps_every_seed(tmp_path):
    """The publish hook registers answers by run name and seed: the seeds of one run name do not replace each other
    (seed 0 keeps the bare run name), and judge.baselines names each of them."""
    from omegaconf import OmegaConf

    from tacos.benchmarks.baselines import baseline_files
    from tacos.answers.registry import entry_name, names
    from tacos.stages.infer import STAGE

    assert (entry_name("sample-random", 0), entry_name("sample-random", 2)) == ("sample-random", "sample-random-seed2")
    answers_dir = tmp_path / "answers"
    for seed in (0, 1, 2):
        stage_dir = tmp_path / f"run{seed}" / "infer"
        rel = {"vicuna": "model_answer/vicuna/tiny-sample-random.jsonl",
               "mt_bench": "model_answer/mt_bench/tiny-sample-random.jsonl"}
        for bench, path in rel.items():
            (stage_dir / path).parent.mkdir(parents=True, exist_ok=True)
            (stage_dir / path).write_text(json.dumps({"seed": seed, "bench": bench}) + "\n")
        base = "model_answer/vicuna/tiny-base.jsonl"
        (stage_dir / base).write_text(json.dumps({"seed": seed, "base": True}) + "\n")
        manifest = {"output_hash": f"h{seed}",
                    "stats": {"answer_files": rel, "base": {"answer_files": {"vicuna": base}}}}
        cfg = OmegaConf.create({"paths": {"answers_dir": str(answers_dir)}, "model": {"name": "tiny"},
                                "run_name": "sample-random", "seed": seed})
        STAGE.publish(cfg, stage_dir, manifest)
    model_dir = answers_dir / "tiny"
    assert names(model_dir) == ["base", "base-seed1", "base-seed2", "sample-random", "sample-random-seed1",
                                "sample-random-seed2"]
    for seed in (0, 1, 2):
        entry = entry_name("sample-random", seed)
        files = baseline_files(entry, ["vicuna", "koala"], str(model_dir))
        assert list(files) == ["vicuna"] and json.loads(files["vicuna"].read_text())["seed"] == seed
        source = json.loads((model_dir / entry / "source.json").read_text())
        assert source["output_hash"] == f"h{seed}" and source["run_dir"] == str((tmp_path / f"run{seed}").resolve())
        base = baseline_files(entry_name("base", seed), ["vicuna"], str(model_dir))["vicuna"]
        assert json.loads(base.read_text()) == {"seed": seed, "base": True}
    assert baseline_files("sample-random-seed3", ["vicuna"], str(model_dir)) is None  # not registered (yet)
