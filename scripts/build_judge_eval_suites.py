"""Build the judge-evaluation suites in data/judge_eval/ from the OpenCS reference files.

    .venv/bin/python scripts/build_judge_eval_suites.py [--reference ../shared/data/reference] [--out data/judge_eval]

Suites (see data/judge_eval/README.md), each split into dev/test by `split_of(id)`:
  mt_bench_pair_*     GPT-4 pairwise MT-Bench verdicts that agree in both orders and are not ties;
  mt_bench_single_*   GPT-4 single-answer MT-Bench ratings (1-10);
  swapped_response_*  an Alpaca answer vs another row's answer: the own answer is known to be better;
  refined_balanced_*  a TACOS-1k answer vs its GPT-4o refinement (the refinement is better), length-balanced: the
                      refinement is the longer answer in exactly half of the pairs of each split;
  cross_instruction_* two rows of one cluster, one of them made bad (off-topic, cut mid-sentence, a non-answer):
                      what the contrastive scorer decides inside a cluster.
Question, answers and reference answers are parsed out of the judge prompts by matching FastChat's prompt templates
exactly (the known MT-Bench questions anchor the match; an ambiguous or failed match stops the build).
Deterministic: the same reference files give byte-identical outputs (canonical JSON Lines, fixed order, seed 0).
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path
from statistics import mean
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from tacos.data.loaders import unwrap_alpaca_one_line  # noqa: E402
from tacos.data.preference_pairs import load_preference_pairs, load_single_ratings, split_of  # noqa: E402
from tacos.records import dumps, record_id  # noqa: E402

PAIR_SOURCE = "judgment_examples/mt_bench_pair__WHATMAKESGOOD_1k_sharegpt-score.jsonl"
SINGLE_SOURCE = "judgment_examples/mt_bench_single__llama2-13b-alpaca_tips_WHAT_1k_sharegpt-e15lr1e-05_single.jsonl"
SWAP_SOURCE = "baselines/filtered_alpaca_1k_score.json"
ORIGINAL_1K = "selected/filtered_alpaca_1k_opencs.json"
REFINED_1K = "selected/refined_alpaca_1k_opencs.json"
MATCH_MIN_SIMILARITY = 0.8  # instruction+input cosine of a matched original / refined row (the refinement rewrites
                            # most instructions: 38 of 1,000 are unchanged)
CROSS_CLUSTERS, CROSS_PAIRS_PER_CLUSTER = 50, 3
QUESTIONS = "llm_judge/mt_bench/question.jsonl"
TEMPLATES = "llm_judge/judge_prompts.jsonl"  # the templates OpenCS judged with (identical to upstream FastChat's)
SWAP_PAIRS = 100
SEED = 0
# Turn 2: both assistants answered turn 1 differently, so the shared context has the user turns only; each
# assistant's own earlier answer is kept in history_1 / history_2 (and in `history` for single ratings).
EARLIER_ANSWER = "(the assistant's earlier answer: not shown, it differs between the answers compared)"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def parse_prompt(template: str, prompt: str, known: dict[str, str], where: str) -> dict[str, str]:
    """The template's unknown fields, read out of `prompt` (a fullmatch; known fields must appear verbatim).

    A lazy and a greedy match must agree, so an answer that itself contains a template delimiter is an error,
    never a silently wrong split.
    """
    parts = re.split(r"\{(\w+)\}", template)
    results = []
    for lazy in (True, False):
        pattern, names = "", set()
        for k, part in enumerate(parts):
            if k % 2 == 0:
                pattern += re.escape(part)
            elif part in known:
                pattern += re.escape(known[part])
            elif part in names:
                pattern += f"(?P={part})"
            else:
                names.add(part)
                pattern += f"(?P<{part}>.*{'?' if lazy else ''})"
        m = re.fullmatch(pattern, prompt, flags=re.DOTALL)
        if m is None:
            raise SystemExit(f"{where}: the prompt does not match the template (known fields: {sorted(known)}).")
        results.append(m.groupdict())
    if results[0] != results[1]:
        raise SystemExit(f"{where}: ambiguous parse (an answer contains a template delimiter).")
    return results[0]


def conversation(turns: list[str], turn: int) -> str:
    """The instruction: the question of `turn`, with the earlier user turns as context (see EARLIER_ANSWER)."""
    if turn == 1:
        return turns[0]
    return f"### User:\n{turns[0]}\n\n### Assistant:\n{EARLIER_ANSWER}\n\n### User:\n{turns[1]}"


def mt_bench_context(reference: Path) -> tuple[dict[int, dict], dict[str, str]]:
    questions = {q["question_id"]: q for q in read_jsonl(reference / QUESTIONS)}
    templates = {t["name"]: t["prompt_template"] for t in read_jsonl(reference / TEMPLATES)}
    return questions, templates


def parse_answers(row: dict, prompt: str, template: str, q: dict, where: str) -> tuple[dict[str, str], str | None]:
    """(parsed fields, reference answer of the judged turn or None)."""
    known = {"question": q["turns"][0], "question_1": q["turns"][0], "question_2": q["turns"][1]}
    fields = parse_prompt(template, prompt, known, where)
    ref = fields.get(f"ref_answer_{row['turn']}")
    return fields, ref


def add_reference(rec: dict[str, Any], fields: dict[str, str], ref: str | None) -> None:
    """Math/reasoning/coding prompts carry GPT-4 reference answers: `reference` for the judged turn, and
    `reference_history` for the earlier turn, so a FastChat math-judge prompt can be re-rendered from the row."""
    if ref is not None:
        rec["reference"] = ref
        if rec["turn"] == 2:
            rec["reference_history"] = [fields["ref_answer_1"]]


def build_pairs(reference: Path) -> tuple[list[dict], dict[str, int]]:
    questions, templates = mt_bench_context(reference)
    out, stats = [], {"rows": 0, "kept": 0, "tie_or_error": 0, "inconsistent": 0}
    for n, row in enumerate(read_jsonl(reference / PAIR_SOURCE)):
        stats["rows"] += 1
        where, q, turn, name = f"{PAIR_SOURCE} row {n}", questions[row["question_id"]], row["turn"], row["judge"][1]
        g1, ref = parse_answers(row, row["g1_user_prompt"], templates[name], q, where + " g1")
        g2, _ = parse_answers(row, row["g2_user_prompt"], templates[name], q, where + " g2")
        a = "answer_a" if turn == 1 else "answer_a_2"
        b = "answer_b" if turn == 1 else "answer_b_2"
        # g1 shows model_1 as Assistant A; g2 is the same pair swapped. Check both, and the verdicts' mapping.
        earlier = ["answer_a_1", "answer_b_1"] if turn == 2 else []
        if [g1[k] for k in (a, b, *earlier)] != [g2[k] for k in (b, a, *earlier[::-1])]:
            raise SystemExit(f"{where}: g2's prompt is not g1's with the assistants swapped.")
        for g, flip in (("g1", False), ("g2", True)):
            # FastChat's rule: "[[A]]" anywhere wins over "[[B]]", which wins over "[[C]]"; none = error.
            verdict = next((v for v in "ABC" if f"[[{v}]]" in row[f"{g}_judgment"]), None)
            said = {"A": "model_2" if flip else "model_1", "B": "model_1" if flip else "model_2",
                    "C": "tie", None: "error"}
            if said[verdict] != row[f"{g}_winner"]:
                raise SystemExit(f"{where}: {g}_winner {row[f'{g}_winner']!r} does not match the judgment's verdict.")
        w1, w2 = row["g1_winner"], row["g2_winner"]
        if w1 not in ("model_1", "model_2") or w2 not in ("model_1", "model_2"):
            stats["tie_or_error"] += 1
            continue
        if w1 != w2:
            stats["inconsistent"] += 1
            continue
        stats["kept"] += 1
        rec: dict[str, Any] = {
            "id": f"mtb-pair-{row['question_id']}-t{turn}", "instruction": conversation(q["turns"], turn), "input": "",
            "output_1": g1[a], "output_2": g1[b], "preference": 1 if w1 == "model_1" else 2,
            "subset": q["category"], "question_id": row["question_id"], "turn": turn, "judge_template": name,
            "model_1": row["model_1"], "model_2": row["model_2"]}
        if turn == 2:
            rec["history_1"], rec["history_2"] = [g1["answer_a_1"]], [g1["answer_b_1"]]
        add_reference(rec, g1, ref)
        out.append(rec)
    return sorted(out, key=lambda r: (r["question_id"], r["turn"])), stats


def build_single(reference: Path) -> tuple[list[dict], dict[str, int]]:
    questions, templates = mt_bench_context(reference)
    out, stats = [], {"rows": 0, "kept": 0, "score_-1": 0, "score_outside_1_10": 0}
    for n, row in enumerate(read_jsonl(reference / SINGLE_SOURCE)):
        stats["rows"] += 1
        where, q, turn, name = f"{SINGLE_SOURCE} row {n}", questions[row["question_id"]], row["turn"], row["judge"][1]
        fields, ref = parse_answers(row, row["user_prompt"], templates[name], q, where)
        if row["score"] == -1:  # FastChat's "no rating could be parsed"
            stats["score_-1"] += 1
            continue
        if not 1 <= row["score"] <= 10:  # GPT-4 once wrote "Rating: [[0]]", off the 1-10 scale it was given
            stats["score_outside_1_10"] += 1
            continue
        stats["kept"] += 1
        rec: dict[str, Any] = {
            "id": f"mtb-single-{row['question_id']}-t{turn}", "instruction": conversation(q["turns"], turn),
            "input": "",
            "output": fields["answer"] if turn == 1 else fields["answer_2"], "rating": row["score"],
            "subset": q["category"], "question_id": row["question_id"], "turn": turn, "judge_template": name,
            "model": row["model"]}
        if turn == 2:
            rec["history"] = [fields["answer_1"]]
        add_reference(rec, fields, ref)
        out.append(rec)
    return sorted(out, key=lambda r: (r["question_id"], r["turn"])), stats


def build_swapped(reference: Path) -> tuple[list[dict], dict[str, int]]:
    """Row i's own answer against row j's answer (j seeded); the own answer's position is balanced per split."""
    rows = []
    for k, row in enumerate(json.loads((reference / SWAP_SOURCE).read_text(encoding="utf-8"))):
        split = unwrap_alpaca_one_line(row["conversations"][0]["value"])
        if split is None:
            raise SystemExit(f"{SWAP_SOURCE} row {k}: human turn has no one-line Alpaca wrapper.")
        rows.append((k, *split, row["conversations"][1]["value"]))
    rng = random.Random(SEED)
    chosen = sorted(rng.sample(range(len(rows)), SWAP_PAIRS))
    recs = []
    for i in chosen:
        k, instruction, input, output = rows[i]
        others = [r for r in rows if r[1] != instruction and r[3] != output]
        j = rng.choice(others)
        recs.append({"id": f"swap-{record_id(instruction, input, output)}", "instruction": instruction, "input": input,
                     "own": output, "other": j[3], "subset": "swapped_response", "source_row": k,
                     "distractor_row": j[0]})
    for r in recs:
        r["good"], r["bad"] = r.pop("own"), r.pop("other")
    position_balanced(recs, rng)
    return recs, {"rows": len(rows), "kept": len(recs)}


def alpaca_rows(reference: Path, name: str) -> list[tuple[str, str, str]]:
    """(instruction, input, output) of a ShareGPT file with the one-line Alpaca wrapper."""
    out = []
    for k, row in enumerate(json.loads((reference / name).read_text(encoding="utf-8"))):
        split = unwrap_alpaca_one_line(row["conversations"][0]["value"])
        if split is None or len(row["conversations"]) < 2:
            raise SystemExit(f"{name} row {k}: not a one-line Alpaca row with an answer.")
        out.append((split[0].strip(), split[1].strip(), row["conversations"][1]["value"]))
    return out


def embed(texts: list[str]):
    from tacos.method.clustering import embed_texts

    return embed_texts(texts, "all-MiniLM-L6-v2", progress=False)


def position_balanced(recs: list[dict], rng: random.Random) -> None:
    """Put the better output ("good") first or second, half and half within each split."""
    for split in ("dev", "test"):
        part = [r for r in recs if split_of(r["id"]) == split]
        labels = ([1, 2] * (len(part) // 2 + 1))[:len(part)]
        rng.shuffle(labels)
        for r, label in zip(part, labels):
            good, bad = r.pop("good"), r.pop("bad")
            r["output_1"], r["output_2"], r["preference"] = (good, bad, 1) if label == 1 else (bad, good, 2)
            if "instruction_bad" in r:  # output_2 (or _1) answers its own instruction
                ins, inp = r.pop("instruction_bad"), r.pop("input_bad")
                if label == 1:
                    r["instruction_2"], r["input_2"] = ins, inp
                else:  # the bad record comes first: swap the instructions too
                    r["instruction_2"], r["input_2"] = r["instruction"], r["input"]
                    r["instruction"], r["input"] = ins, inp


def build_refined(reference: Path) -> tuple[list[dict], dict[str, int]]:
    """Each TACOS-1k row vs its GPT-4o refinement, matched by instruction+input similarity (one-to-one assignment,
    mutual best match, cosine >= MATCH_MIN_SIMILARITY, same input); then per split every pair whose refinement is
    shorter and as many (seeded) whose refinement is longer: always-the-longer-answer scores 0.5 by construction."""
    from scipy.optimize import linear_sum_assignment

    a, b = alpaca_rows(reference, ORIGINAL_1K), alpaca_rows(reference, REFINED_1K)
    sim = embed([f"{x[0]}\n{x[1]}" for x in a]) @ embed([f"{x[0]}\n{x[1]}" for x in b]).T
    rows, cols = linear_sum_assignment(-sim)
    keep = [(i, j) for i, j in zip(rows, cols) if sim.argmax(1)[i] == j and sim.argmax(0)[j] == i
            and sim[i, j] >= MATCH_MIN_SIMILARITY and a[i][1] == b[j][1] and a[i][2].strip() != b[j][2].strip()]
    recs = [{"id": f"refined-{record_id(*a[i])}", "instruction": a[i][0], "input": a[i][1], "good": b[j][2],
             "bad": a[i][2], "subset": "refined_balanced", "refined_longer": len(b[j][2]) > len(a[i][2]),
             "refined_instruction": b[j][0]} for i, j in keep]
    rng = random.Random(SEED)
    balanced = []
    for split in ("dev", "test"):
        part = [r for r in recs if split_of(r["id"]) == split]
        shorter = [r for r in part if not r["refined_longer"]]
        balanced += shorter + rng.sample([r for r in part if r["refined_longer"]], len(shorter))
    balanced.sort(key=lambda r: r["id"])
    position_balanced(balanced, rng)
    return balanced, {"rows": len(a), "matched": len(keep), "refined_longer": sum(r["refined_longer"] for r in recs),
                      "kept": len(balanced)}


def build_cross(reference: Path) -> tuple[list[dict], dict[str, int]]:
    """Pairs of rows from one cluster (MiniLM instruction embeddings, seeded K-means), the second made bad in turn
    off-topic (a response from another cluster), cut mid-sentence, or a non-answer (tacos.data.planted)."""
    from sklearn.cluster import KMeans

    from tacos.data.planted import KINDS, plant

    rows = alpaca_rows(reference, SWAP_SOURCE)
    labels = KMeans(CROSS_CLUSTERS, random_state=SEED, n_init=10).fit_predict(
        embed([f"{x[0]}\n{x[1]}" for x in rows]))
    rng = random.Random(SEED)
    recs, kind = [], 0
    for c in range(CROSS_CLUSTERS):
        members = [k for k in range(len(rows)) if labels[k] == c]
        rng.shuffle(members)
        outside = [rows[k][2] for k in range(len(rows)) if labels[k] != c]
        for p in range(min(CROSS_PAIRS_PER_CLUSTER, len(members) // 2)):
            good, bad = rows[members[2 * p]], rows[members[2 * p + 1]]
            what = KINDS[kind % len(KINDS)]
            kind += 1
            recs.append({"id": f"cross-{record_id(*good)}-{record_id(*bad)[:9]}", "instruction": good[0],
                         "input": good[1], "good": good[2], "bad": plant(what, bad[2], rng, outside),
                         "instruction_bad": bad[0], "input_bad": bad[1], "subset": what, "cluster": c})
    position_balanced(recs, rng)
    return recs, {"rows": len(rows), "clusters": CROSS_CLUSTERS, "kept": len(recs)}


def describe(rows: list[dict]) -> str:
    if "rating" in rows[0]:
        ratings, lengths = [r["rating"] for r in rows], [len(r["output"]) for r in rows]
        return f"mean rating {mean(ratings):.2f}, mean output {mean(lengths):.0f} chars"
    prefs = [r["preference"] for r in rows]
    len1, len2 = [len(r["output_1"]) for r in rows], [len(r["output_2"]) for r in rows]
    longer = [1 if a > b else 2 for a, b in zip(len1, len2) if a != b]
    won = sum(1 for r, a, b in zip(rows, len1, len2) if a != b and r["preference"] == (1 if a > b else 2))
    return (f"pref 1/2/tie {prefs.count(1)}/{prefs.count(2)}/{prefs.count(1.5)}, mean len output_1 {mean(len1):.0f} "
            f"output_2 {mean(len2):.0f} chars, longer preferred {won}/{len(longer)}")


def write_suite(out_dir: Path, name: str, rows: list[dict]) -> dict[str, list[dict]]:
    splits = {s: [r for r in rows if split_of(r["id"]) == s] for s in ("dev", "test")}
    for split, part in splits.items():
        path = out_dir / f"{name}_{split}.jsonl"
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(dumps(r) + "\n" for r in part)
        loaded = load_single_ratings(path) if name.endswith("single") else load_preference_pairs(path)
        assert len(loaded) == len(part), path
        print(f"{path.name}: {len(part)} rows; {describe(part)}")
    return splits


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", type=Path, default=REPO.parent / "shared" / "data" / "reference")
    ap.add_argument("--out", type=Path, default=REPO / "data" / "judge_eval")
    args = ap.parse_args(argv)
    if not (args.reference / PAIR_SOURCE).exists():
        raise SystemExit(f"{args.reference}: not the OpenCS reference folder ({PAIR_SOURCE} is missing).")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, build in (("mt_bench_pair", build_pairs), ("mt_bench_single", build_single),
                        ("swapped_response", build_swapped), ("refined_balanced", build_refined),
                        ("cross_instruction", build_cross)):
        rows, stats = build(args.reference)
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
        write_suite(args.out, name, rows)


if __name__ == "__main__":
    main()
