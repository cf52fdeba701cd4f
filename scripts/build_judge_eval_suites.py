"""Build the judge-evaluation suites in data/judge_eval/ from the OpenCS reference files.

    .venv/bin/python scripts/build_judge_eval_suites.py [--reference ../shared/data/reference] [--out data/judge_eval]

Suites (see data/judge_eval/README.md), each split into dev/test by its source row (`tacos.data.splits.suite_half`
of instruction + input; MT-Bench: of the turn-1 question), so an instruction is in one half in every suite:
  mt_bench_pair_*     GPT-4 pairwise MT-Bench verdicts that agree in both orders and are not ties;
  mt_bench_single_*   GPT-4 single-answer MT-Bench ratings (1-10);
  swapped_response_*  an Alpaca answer vs another row's answer: the own answer is known to be better;
  refined_balanced_*  a TACOS-1k answer vs its GPT-4o refinement (the refinement is better), length-balanced: the
                      refinement is the longer answer in exactly half of the pairs of each split;
  cross_instruction_* two rows of one cluster, one of them made bad (off-topic, cut mid-sentence, a non-answer):
                      what the contrastive scorer decides inside a cluster;
  alpagasus_rating_*  AlpaGasus random Alpaca rows, rating 1 if Claude rated them >= 4.5 (claude_t45.json) else 0;
  alpagasus_pair_*    one row rated >= 4.5 vs one rated lower, same cluster, length ratio <= 1.25.
Rows whose instruction is in the 5 test sets or MT-Bench are left out (MT-Bench suites aside); AlpaGasus rows of
source_split "train" are left out of every suite (reserved for training a head).
Question, answers and reference answers are parsed out of the judge prompts by matching FastChat's prompt templates
exactly (the known MT-Bench questions anchor the match; an ambiguous or failed match stops the build).
Deterministic: the same reference files give byte-identical outputs (canonical JSON Lines, fixed order, seed 0).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import sys
from pathlib import Path
from statistics import mean
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from tacos.data.loaders import unwrap_alpaca_one_line  # noqa: E402
from tacos.data.preference_pairs import load_preference_pairs, load_single_ratings  # noqa: E402
from tacos.data.splits import _normalized, source_split, suite_half  # noqa: E402
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
ALPAGASUS_RANDOM, ALPAGASUS_T45 = "alpagasus/random_9k.json", "alpagasus/claude_t45.json"
ALPAGASUS_CLUSTERS = 100         # K-means over the MiniLM embeddings of instruction + input of the dev/test rows
ALPAGASUS_PAIRS_PER_HALF = 200   # files stay small (about 150 KB a half)
ALPAGASUS_NEGATIVES_PER_HALF = 1500  # negatives embedded and clustered per half, beside every positive
ALPAGASUS_POSITIVES_PER_HALF = 100  # rating suite: 100 rated >= 4.5 plus negatives at the half's natural rate
MAX_LENGTH_RATIO = 1.25          # longer / shorter output (characters) of a pair: length tells little
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
            "model_1": row["model_1"], "model_2": row["model_2"], "_half": suite_half(q["turns"][0])}
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
            "model": row["model"], "_half": suite_half(q["turns"][0])}
        if turn == 2:
            rec["history"] = [fields["answer_1"]]
        add_reference(rec, fields, ref)
        out.append(rec)
    return sorted(out, key=lambda r: (r["question_id"], r["turn"])), stats


def build_swapped(reference: Path) -> tuple[list[dict], dict[str, int]]:
    """Row i's own answer against row j's answer (j seeded); the own answer's position is balanced per split."""
    rows, excluded = [], excluded_instructions()
    for k, row in enumerate(json.loads((reference / SWAP_SOURCE).read_text(encoding="utf-8"))):
        split = unwrap_alpaca_one_line(row["conversations"][0]["value"])
        if split is None:
            raise SystemExit(f"{SWAP_SOURCE} row {k}: human turn has no one-line Alpaca wrapper.")
        if _normalized(split[0]) not in excluded:
            rows.append((k, *split, row["conversations"][1]["value"]))
    rng = random.Random(SEED)
    chosen = sorted(rng.sample(range(len(rows)), SWAP_PAIRS))
    recs = []
    for i in chosen:
        k, instruction, input, output = rows[i]
        half = suite_half(instruction, input)  # the distractor's answer comes from a row of the same half
        others = [r for r in rows if r[1] != instruction and r[3] != output and suite_half(r[1], r[2]) == half]
        j = rng.choice(others)
        recs.append({"id": f"swap-{record_id(instruction, input, output)}", "instruction": instruction, "input": input,
                     "own": output, "other": j[3], "subset": "swapped_response", "source_row": k,
                     "distractor_row": j[0], "_half": half})
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
    """Put the better output ("good") first or second, half and half within each half (dev / test)."""
    for half in ("dev", "test"):
        part = [r for r in recs if r["_half"] == half]
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


def excluded_instructions() -> set[str]:
    """Normalised instructions of the 5 test sets and the MT-Bench questions: no suite row may use one of them.
    (AlpacaEval's eval set is not bundled; its koala / self-instruct / vicuna parts are among the 5 test sets.)"""
    out = set()
    for path in sorted((REPO / "data" / "test_sets").glob("*.jsonl")):
        out |= {_normalized(r["instruction"]) for r in read_jsonl(path)}
    for q in read_jsonl(REPO / "data" / "mt_bench" / "question.jsonl"):
        out |= {_normalized(t) for t in q["turns"]}
    return out


def verified_json(reference: Path, name: str) -> Any:
    """A reference file, after checking its sha256 against the SHA256SUMS beside it (a changed copy stops the build)."""
    path = reference / name
    sums = dict(reversed(line.split()) for line in (path.parent / "SHA256SUMS").read_text().splitlines() if line.strip())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if sums.get(path.name) != digest:
        raise SystemExit(f"{path}: sha256 {digest} does not match SHA256SUMS ({sums.get(path.name)}).")
    return json.loads(path.read_text(encoding="utf-8"))


def length_ratio(a: str, b: str) -> float:
    short, long = sorted((len(a.strip()), len(b.strip())))
    return long / short if short else float("inf")


def alpagasus_rows(reference: Path) -> tuple[list[dict], dict[str, int]]:
    """random_9k rows with their label (1 = in claude_t45.json, matched on instruction + input + output exactly) and
    half; rows of source_split "train" (reserved for training a head) and test-set / MT-Bench instructions dropped."""
    rows = verified_json(reference, ALPAGASUS_RANDOM)
    rated = {(r["instruction"], r["input"], r["output"]) for r in verified_json(reference, ALPAGASUS_T45)}
    excluded = excluded_instructions()
    out, stats = [], {"rows": len(rows), "positives": 0, "train": 0, "test_set_instruction": 0, "empty_output": 0}
    for k, r in enumerate(rows):
        key = (r["instruction"], r["input"], r["output"])
        stats["positives"] += key in rated
        if source_split(r["instruction"], r["input"]) == "train":
            stats["train"] += 1
        elif _normalized(r["instruction"]) in excluded:
            stats["test_set_instruction"] += 1
        elif not r["output"].strip():
            stats["empty_output"] += 1
        else:
            out.append({"instruction": r["instruction"], "input": r["input"], "output": r["output"],
                        "label": int(key in rated), "source_row": k, "_half": suite_half(r["instruction"], r["input"])})
    return out, stats


def build_alpagasus_rating(reference: Path) -> tuple[list[dict], dict[str, int]]:
    """Per half: ALPAGASUS_POSITIVES_PER_HALF rows Claude rated >= 4.5 (rating 1) and negatives (rating 0) at the
    half's natural rate, drawn with a seeded generator; file order = source row order."""
    rows, stats = alpagasus_rows(reference)
    rng, recs = random.Random(SEED), []
    for half in ("dev", "test"):
        pos = [r for r in rows if r["_half"] == half and r["label"]]
        neg = [r for r in rows if r["_half"] == half and not r["label"]]
        n_neg = round(ALPAGASUS_POSITIVES_PER_HALF * len(neg) / len(pos))
        stats[f"{half}_eligible"], stats[f"{half}_eligible_positives"] = len(pos) + len(neg), len(pos)
        for r in rng.sample(pos, ALPAGASUS_POSITIVES_PER_HALF) + rng.sample(neg, n_neg):
            recs.append({"id": f"agr-{record_id(r['instruction'], r['input'], r['output'])}",
                         "instruction": r["instruction"], "input": r["input"], "output": r["output"],
                         "rating": float(r["label"]), "subset": "alpagasus_rating", "source_row": r["source_row"],
                         "_half": half})
    recs.sort(key=lambda r: r["source_row"])
    stats["kept"] = len(recs)
    return recs, stats


def build_alpagasus_pair(reference: Path) -> tuple[list[dict], dict[str, int]]:
    """One row rated >= 4.5 vs one rated lower, from one cluster (MiniLM + seeded K-means over instruction + input)
    and one half, outputs within MAX_LENGTH_RATIO of each other; each row used once; the better side balanced."""
    from sklearn.cluster import KMeans

    rows, stats = alpagasus_rows(reference)
    # every positive, and a seeded sample of the negatives (the embeddings are the build's slow part)
    rng = random.Random(SEED)
    negatives = {h: [k for k, r in enumerate(rows) if r["_half"] == h and not r["label"]] for h in ("dev", "test")}
    keep = sorted([k for k, r in enumerate(rows) if r["label"]]
                  + [k for h in ("dev", "test") for k in rng.sample(negatives[h], min(len(negatives[h]),
                                                                                       ALPAGASUS_NEGATIVES_PER_HALF))])
    rows = [rows[k] for k in keep]
    labels = KMeans(ALPAGASUS_CLUSTERS, random_state=SEED, n_init=10).fit_predict(
        embed([f"{r['instruction']}\n{r['input']}" for r in rows]))
    recs = []
    for half in ("dev", "test"):
        pos = [k for k, r in enumerate(rows) if r["_half"] == half and r["label"]]
        rng.shuffle(pos)
        free = {k for k, r in enumerate(rows) if r["_half"] == half and not r["label"]}
        made = 0
        for p in pos:
            good = rows[p]
            options = sorted(k for k in free if labels[k] == labels[p]
                             and length_ratio(rows[k]["output"], good["output"]) <= MAX_LENGTH_RATIO
                             and _normalized(rows[k]["instruction"]) != _normalized(good["instruction"]))
            if not options:
                continue
            bad = rows[rng.choice(options)]
            free.discard(rows.index(bad))
            recs.append({"id": f"agp-{record_id(good['instruction'], good['input'], good['output'])}-"
                               f"{record_id(bad['instruction'], bad['input'], bad['output'])[:9]}",
                         "instruction": good["instruction"], "input": good["input"], "good": good["output"],
                         "bad": bad["output"], "instruction_bad": bad["instruction"], "input_bad": bad["input"],
                         "subset": "alpagasus_pair", "cluster": int(labels[p]), "source_row_better": good["source_row"],
                         "source_row_worse": bad["source_row"], "_half": half})
            made += 1
            if made == ALPAGASUS_PAIRS_PER_HALF:
                break
        stats[f"{half}_pairs"] = made
    position_balanced(recs, rng)
    return recs, stats


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
             "refined_instruction": b[j][0], "label_assumed": True, "_half": suite_half(a[i][0], a[i][1])}
            for i, j in keep]
    rng = random.Random(SEED)
    balanced = []
    for split in ("dev", "test"):
        part = [r for r in recs if r["_half"] == split]
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

    excluded = excluded_instructions()
    rows = [r for r in alpaca_rows(reference, SWAP_SOURCE) if _normalized(r[0]) not in excluded]
    labels = KMeans(CROSS_CLUSTERS, random_state=SEED, n_init=10).fit_predict(
        embed([f"{x[0]}\n{x[1]}" for x in rows]))
    rng = random.Random(SEED)
    recs, kind = [], 0
    for c in range(CROSS_CLUSTERS):
        members = [k for k in range(len(rows)) if labels[k] == c]
        rng.shuffle(members)
        outside = [rows[k][2] for k in range(len(rows)) if labels[k] != c]
        halves = {h: [k for k in members if suite_half(*rows[k][:2]) == h] for h in ("dev", "test")}
        # both rows of a pair from one half; the pairs of a cluster alternate between the halves
        pairs = [(h, halves[h][2 * p], halves[h][2 * p + 1]) for p in range(len(members))
                 for h in (("dev", "test") if c % 2 else ("test", "dev")) if 2 * p + 1 < len(halves[h])
                 ][:CROSS_PAIRS_PER_CLUSTER]
        for half, g, b in pairs:
            good, bad = rows[g], rows[b]
            what = KINDS[kind % len(KINDS)]
            kind += 1
            recs.append({"id": f"cross-{record_id(*good)}-{record_id(*bad)[:9]}", "instruction": good[0],
                         "input": good[1], "good": good[2], "bad": plant(what, bad[2], rng, outside),
                         "instruction_bad": bad[0], "input_bad": bad[1], "subset": what, "cluster": c,
                         "_half": half})
    position_balanced(recs, rng)
    return recs, {"rows": len(rows), "clusters": CROSS_CLUSTERS, "kept": len(recs)}


# --- real defects -------------------------------------------------------------------------------------------------
# Kinds of defect real instruction data has (issue 20). Real rows are found in the Alpaca files by the patterns below
# (a finding aid for building the suite, reviewed by hand: REAL_DEFECT_FALSE_HITS lists what they catch wrongly);
# wrong answers, most action claims and a few of each other kind are written by hand
# (data/judge_eval/sources/real_defects_written.jsonl); cut_512 rows are real long LIMA / Evol-Instruct answers cut
# after about 512 tokens, wherever that falls (mid-word, after a comma, after a list number...).
REAL_DEFECT_KINDS = ("link_input", "attachment", "merged_tasks", "placeholder_output", "wrong_answer", "action_claim",
                     "cut_512")
REAL_DEFECTS_WRITTEN = REPO / "data" / "judge_eval" / "sources" / "real_defects_written.jsonl"
REAL_ALPACA_FILES = ("baselines/filtered_alpaca_1k_longest.json", "baselines/filtered_alpaca_1k_score.json",
                     "selected/filtered_alpaca_1k_opencs.json")
LONG_ANSWER_FILES = ("baselines/fastchat_lima_1k.json", "baselines/filtered_evol_instruct_1k_score.json")
_URL = r"(?:https?://|www\.)\S+"
_ATTACHED = (r"<image>|<img\b|!\[[^\]]*\]\(|\[image|\(attached image\)|<video>|\[audio|\battached\b|"
             r"\.(?:jpe?g|png|gif|mp3|wav|mp4|pdf|xlsx|docx)\b")
REAL_DEFECT_PATTERNS = {
    "link_input": lambda i, x, o: re.fullmatch(rf"\s*(?:\w+:\s*)?{_URL}\s*", x) is not None
    and re.search(r"\b(url|domain|algorithm|program|code|regex|shorten|parse|extract|valid)", i, re.I) is None,
    "attachment": lambda i, x, o: re.search(_ATTACHED, x, re.I) is not None or re.search(r"<image>", i) is not None,
    "merged_tasks": lambda i, x, o: re.search(r"\n\s*\d+\.\s*Instruction:|###\s*Instruction", o) is not None,
    "placeholder_output": lambda i, x, o: re.fullmatch(
        r"\s*(?:<\s*no\s*output\s*>|N/?A\.?|No output\b.*|<[A-Za-z][^<>/]{0,30}(?:/[^<>]{1,20})?>|\[[A-Z][^\],]{2,40}\])\s*",
        o, re.I | re.S) is not None,
    "action_claim": lambda i, x, o: re.search(
        r"\b(?:I have|I've) (?:sent|set|booked|made a chart|scheduled|ordered|emailed|called|reserved)\b", o) is not None,
}
# rows the patterns catch that are not defects (reviewed by hand): instruction prefixes
REAL_DEFECT_FALSE_HITS = (
    "Design a dialogue flow", "Imagine a conversation", "Apply the scientific method", "Generate a story of 20",
    "Create an app that", "Describe the steps to install", "Edit the given sentence", "Design a cover page",
    "Create a data modeling", "Come up with input and output", "Complete the code", "Design a program",
    "Write a simple algorithm", "Generate the HTML", "Create a form in HTML",
    "Create a piece of art in the style of Van Gogh",  # explains why it gives no picture: not a placeholder
    "Given a website link, classify the website")  # a famous domain: answerable without opening the link
# good rows that are not (reviewed by hand in the pools): Claude rated these wrong answers >= 4.5
NOT_GOOD = ("Rearrange the letters in the following word \"twilight\"", "Analyze the pattern and predict the next number",
            "Calculate the surface area of a cuboid with length 8 cm")
PIECE = re.compile(r"\s*(?:\w+|[^\w\s])")  # a word or one punctuation mark (with the whitespace before it)
CUT_PIECES = (390, 470)  # ~512 tokens of a BPE tokenizer (a piece is ~1.2 tokens); the cut point is drawn per row
POOL_DEFECTS = {"link_input": 2, "attachment": 2, "merged_tasks": 2, "placeholder_output": 2, "action_claim": 2,
                "wrong_answer": 1, "cut_512": 1}
POOL_SIZE = 40
CUT_PER_HALF = 12


def sharegpt_alpaca(reference: Path, name: str) -> list[tuple[str, str, str]]:
    out = []
    for row in json.loads((reference / name).read_text(encoding="utf-8")):
        split = unwrap_alpaca_one_line(row["conversations"][0]["value"])
        if split is not None and len(row["conversations"]) >= 2:
            out.append((split[0].strip(), split[1].strip(), row["conversations"][1]["value"]))
    return out


def defect_kind(instruction: str, input: str, output: str) -> str | None:
    if instruction.startswith(REAL_DEFECT_FALSE_HITS):
        return None
    return next((k for k, hit in REAL_DEFECT_PATTERNS.items() if hit(instruction, input, output)), None)


def cut_after_pieces(output: str, n: int, whole_sentences: bool) -> str:
    """The first n pieces; with whole_sentences, backed off to the last sentence end before them (what a pipeline that
    trims to whole sentences keeps: still an unfinished answer, but one that ends with a full stop)."""
    cut = "".join(PIECE.findall(output)[:n])
    if whole_sentences:
        ends = [m.end() for m in re.finditer(r"[.!?](?=\s)", cut)]
        if ends and ends[-1] > len(cut) // 2:
            cut = cut[:ends[-1]]
    return cut


def real_defect_rows(reference: Path) -> tuple[list[dict], list[dict], dict[str, int]]:
    """(defect rows, good rows, stats): every row {instruction, input, output, kind|None, source, _half}; test-set /
    MT-Bench instructions left out; one row per instruction + input (the first source wins)."""
    excluded, seen = excluded_instructions(), set()
    defects, good, stats = [], [], {}

    def take(instruction: str, input: str, output: str, kind: str | None, source: str) -> None:
        key = (_normalized(instruction), _normalized(input))
        if key in seen or key[0] in excluded or not output.strip():
            return
        seen.add(key)
        row = {"instruction": instruction, "input": input, "output": output, "kind": kind, "source": source,
               "_half": suite_half(instruction, input)}
        (defects if kind else good).append(row)

    for r in read_jsonl(REAL_DEFECTS_WRITTEN):
        take(r["instruction"], r["input"], r["output"], r["kind"], "written for this suite")
    random9k = verified_json(reference, ALPAGASUS_RANDOM)
    rated = {(r["instruction"], r["input"], r["output"]) for r in verified_json(reference, ALPAGASUS_T45)}
    alpaca = [(r["instruction"], r["input"], r["output"], f"{ALPAGASUS_RANDOM} row {k}") for k, r in enumerate(random9k)]
    for name in REAL_ALPACA_FILES:
        alpaca += [(*r, f"{name} row {k}") for k, r in enumerate(sharegpt_alpaca(reference, name))]
    for instruction, input, output, source in alpaca:
        kind = defect_kind(instruction, input, output)
        if kind:
            take(instruction, input, output, kind, source)
    # good rows: Alpaca rows Claude rated >= 4.5 and long LIMA / Evol-Instruct answers, none caught by a pattern
    rng = random.Random(SEED)
    for k, r in enumerate(random9k):
        key = (r["instruction"], r["input"], r["output"])
        if key in rated and defect_kind(*key) is None and not r["instruction"].startswith(NOT_GOOD) \
                and not re.search(_URL + "|" + _ATTACHED, r["input"], re.I):
            take(*key, None, f"{ALPAGASUS_RANDOM} row {k} (Claude >= 4.5)")
    long_rows = [(*r, f"{name} row {k}") for name in LONG_ANSWER_FILES
                 for k, r in enumerate(sharegpt_alpaca(reference, name))]
    rng.shuffle(long_rows)
    cut = {"dev": 0, "test": 0}
    for instruction, input, output, source in long_rows:
        half = suite_half(instruction, input)
        pieces = len(PIECE.findall(output))
        if defect_kind(instruction, input, output) or re.search(_URL + "|" + _ATTACHED, input, re.I):
            continue
        if pieces > CUT_PIECES[1] * 1.5 and cut[half] < CUT_PER_HALF:  # clearly mid-answer at the cut
            cut[half] += 1
            take(instruction, input, cut_after_pieces(output, rng.randint(*CUT_PIECES), cut[half] % 2 == 0),
                 "cut_512", source + (", cut at a sentence end" if cut[half] % 2 == 0 else ", cut"))
        else:
            take(instruction, input, output, None, source)
    for kind in REAL_DEFECT_KINDS:
        for half in ("dev", "test"):
            stats[f"{kind}_{half}"] = sum(1 for r in defects if r["kind"] == kind and r["_half"] == half)
    stats["good"] = len(good)
    return defects, good, stats


def build_real_defects(reference: Path) -> tuple[list[dict], dict[str, int]]:
    """Each defect row against a good row of the same half whose answer has the nearest length (each good row used
    once); preference -> the good row; subset = the kind. Also writes the selection pools (see write_real_pools)."""
    defects, good, stats = real_defect_rows(reference)
    rng, recs = random.Random(SEED), []
    for half in ("dev", "test"):
        free = [g for g in good if g["_half"] == half]
        for d in sorted((d for d in defects if d["_half"] == half), key=lambda d: (d["kind"], d["source"])):
            g = min(free, key=lambda g: (abs(math.log(len(g["output"]) / len(d["output"]))), g["source"]))
            free.remove(g)
            recs.append({"id": f"rd-{record_id(g['instruction'], g['input'], g['output'])}-"
                               f"{record_id(d['instruction'], d['input'], d['output'])[:9]}",
                         "instruction": g["instruction"], "input": g["input"], "good": g["output"],
                         "bad": d["output"], "instruction_bad": d["instruction"], "input_bad": d["input"],
                         "subset": d["kind"], "source_good": g["source"], "source_bad": d["source"], "_half": half})
    position_balanced(recs, rng)
    stats["kept"] = len(recs)
    return recs, stats


def real_defect_pools(reference: Path) -> dict[str, list[dict]]:
    """Per half a POOL_SIZE-row selection pool (Alpaca rows + `defect` = kind or null): POOL_DEFECTS defect rows and
    Alpaca rows rated >= 4.5 (plus two LIMA / Evol-Instruct rows), in a seeded order."""
    defects, good, _ = real_defect_rows(reference)
    rng, pools = random.Random(SEED + 1), {}
    for half in ("dev", "test"):
        rows = []
        for kind, n in POOL_DEFECTS.items():
            rows += rng.sample(sorted((d for d in defects if d["_half"] == half and d["kind"] == kind),
                                      key=lambda d: d["source"]), n)
        alpaca = [g for g in good if g["_half"] == half and g["source"].startswith(ALPAGASUS_RANDOM)]
        longer = [g for g in good if g["_half"] == half and not g["source"].startswith(ALPAGASUS_RANDOM)]
        n_good = POOL_SIZE - len(rows)
        rows += rng.sample(alpaca, n_good - 2) + rng.sample(longer, 2)
        rng.shuffle(rows)
        pools[half] = [{"instruction": r["instruction"], "input": r["input"], "output": r["output"],
                        "defect": r["kind"], "source": r["source"]} for r in rows]
    return pools


def write_real_pools(reference: Path, out_dir: Path) -> None:
    for half, rows in real_defect_pools(reference).items():
        path = out_dir / f"real_defects_pool_{half}.jsonl"
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(dumps(r) + "\n" for r in rows)
        kinds = [r["defect"] for r in rows if r["defect"]]
        print(f"{path.name}: {len(rows)} rows, {len(kinds)} defects ({', '.join(sorted(kinds))})")


def describe(rows: list[dict]) -> str:
    if "rating" in rows[0] and rows[0]["subset"] == "alpagasus_rating":
        positives = sum(r["rating"] == 1.0 for r in rows)
        return f"positives {positives} ({positives / len(rows):.1%}), mean output {mean(len(r['output']) for r in rows):.0f} chars"
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
    splits = {s: [{k: v for k, v in r.items() if k != "_half"} for r in rows if r["_half"] == s] for s in ("dev", "test")}
    for split, part in splits.items():
        path = out_dir / f"{name}_{split}.jsonl"
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(dumps(r) + "\n" for r in part)
        loaded = load_single_ratings(path) if "output" in part[0] else load_preference_pairs(path)
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
                        ("cross_instruction", build_cross), ("alpagasus_rating", build_alpagasus_rating),
                        ("alpagasus_pair", build_alpagasus_pair), ("real_defects", build_real_defects)):
        rows, stats = build(args.reference)
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
        write_suite(args.out, name, rows)
    write_real_pools(args.reference, args.out)


if __name__ == "__main__":
    main()
