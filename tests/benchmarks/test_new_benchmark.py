"""A new benchmark is three files — its class, its conf/benchmark/<name>.yaml, its data — and nothing else: infer
answers its questions (two turns, its own sampling), the judge stage runs it with the run's pair judge and the report
shows its columns. Written here outside the repository, found through PYTHONPATH and hydra.searchpath, as a user's
own benchmark would be."""
from __future__ import annotations

import json
import re

from conftest import run_cli, stub_overrides
from stub_server import StubServer, last_user_message

CLASS = '''
from dataclasses import dataclass
from pathlib import Path

from tacos.answers.answer_files import our_answers, placeholder_answers
from tacos.answers.jobs import QuestionToAnswer
from tacos.benchmarks.base import BenchmarkResult, JsonLines, ReportRow, cell
from tacos.records import Record, TestQuestion, file_sha256, read_jsonl


@dataclass
class ToyChatBenchmark:
    """Two-turn chats; our last answer vs the data's reference answer, by the run's pair judge."""

    data_file: str
    name: str = "toy_chat"
    temperature: float = 0.3
    uses_pair_judge = True

    def rows(self, limit=None):
        return read_jsonl(Path(self.data_file))[:limit]

    def validate(self):
        if not Path(self.data_file).is_file():
            raise ValueError(f"{self.name}.data_file: {self.data_file} does not exist")

    def identity(self, data_dir):
        return {"data": file_sha256(self.data_file)}

    def answer_jobs(self, data_dir, limit):
        return [QuestionToAnswer(self.name, r["id"], tuple(r["turns"]), temperature=self.temperature,
                                 max_new_tokens=64) for r in self.rows(limit)]

    def pairs(self, run):
        rows = self.rows(run.limit)
        ours = (our_answers(run.infer_dir, run.model_id, [self.name])[self.name] if run.answered else
                placeholder_answers([TestQuestion(r["id"], self.name, r["turns"][0]) for r in rows]))
        return [(Record(f"{r['id']}/ours", 0, r["turns"][-1], "", ours.turns[r["id"]][-1]),
                 Record(f"{r['id']}/ref", 0, r["turns"][-1], "", r["reference"])) for r in rows]

    def requests(self, run):
        return run.pair_judge.requests(self.pairs(run), run.jctx), run.answered

    def run(self, run):
        verdicts = run.pair_judge.judge_pairs(self.pairs(run), run.jctx)
        wins = sum(1 for v in verdicts if v.p_first is not None and v.p_first > 0.5)
        rows = [{"id": v.first, "p_ours": v.p_first} for v in verdicts]
        return BenchmarkResult(counts={"toy_chat_pairs": len(verdicts)},
                               stats={self.name: {"win_rate": 100.0 * wins / len(verdicts)}},
                               files={f"{self.name}/verdicts.jsonl": JsonLines(rows)}, pair_verdicts=verdicts)

    def summary(self, stats):
        wr = (stats.get(self.name) or {}).get("win_rate")
        return [ReportRow("reference", {f"{self.name}_win_rate": wr}, {"Toy chat win %": cell(wr)})]
'''


def responder(body: dict) -> str:
    """Answers: turn k of a chat gets "answer k"; the judge prefers whichever answer says "answer 2"."""
    user = last_user_message(body)
    if "[Assistant 1's answer]" in user:
        first = user.split("[Assistant 1's answer]", 1)[1].split("[End of Assistant 1's answer]", 1)[0]
        return "9 2\nours." if "answer 2" in first else "2 9\nreference."
    return f"answer {(len(body['messages']) + 1) // 2}"


def test_a_toy_multi_turn_benchmark_is_answered_judged_and_reported(tmp_path):
    (tmp_path / "toy_bench").mkdir()
    (tmp_path / "toy_bench" / "__init__.py").write_text("")
    (tmp_path / "toy_bench" / "toy_chat.py").write_text(CLASS)  # file 1: the class
    data = tmp_path / "toy_chat.jsonl"  # file 2: the data
    data.write_text("".join(json.dumps({"id": f"c{k}", "turns": [f"Hi {k}.", "And then?"], "reference": "meh"}) + "\n"
                            for k in range(3)))
    (tmp_path / "conf" / "benchmark").mkdir(parents=True)
    (tmp_path / "conf" / "benchmark" / "toy_chat.yaml").write_text(  # file 3: its config
        f"_target_: toy_bench.toy_chat.ToyChatBenchmark\ndata_file: {data}\n")
    run_dir = tmp_path / "run"
    with StubServer(responder=responder) as stub:
        out = run_cli([*stub_overrides(stub, tmp_path), f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
                       "benchmarks=none", "+benchmark@benchmarks.toy_chat=toy_chat", "stages=[infer,judge,report]",
                       "infer/generator=openai", f"hydra.run.dir={run_dir}"], env={"PYTHONPATH": str(tmp_path)})
        assert out.returncode == 0, out.stderr[-3000:]
        chats = [r for r in stub.requests if "[Assistant 1's answer]" not in last_user_message(r)]
    # Answered: both turns, the second after our first answer, with the benchmark's own sampling.
    assert len(chats) == 3 * 2 and {(r["temperature"], r["max_tokens"]) for r in chats} == {(0.3, 64)}
    assert sorted(len(r["messages"]) for r in chats) == [1, 1, 1, 3, 3, 3]
    answers = [json.loads(x) for x in next((run_dir / "infer" / "model_answer" / "toy_chat").glob("*.jsonl"))
               .read_text().splitlines()]
    assert [a["choices"][0]["turns"] for a in answers] == [["answer 1", "answer 2"]] * 3
    # Judged by the run's pair judge, in both orders; its verdicts feed the gate like any pair judge's.
    judge = json.loads((run_dir / "judge" / "manifest.json").read_text())
    assert judge["stats"]["toy_chat"]["win_rate"] == 100.0 and judge["counts"]["toy_chat_pairs"] == 3
    assert judge["stats"]["gate_judges"]["judge"]["n_pairs_both_orders"] == 3
    assert len((run_dir / "judge" / "toy_chat" / "verdicts.jsonl").read_text().splitlines()) == 3
    # Reported: its own column, from its summary.
    report = (run_dir / "report" / "report.md").read_text()
    assert "Toy chat win %" in report and re.search(r"\|\s*100\.00\s*\|", report)
