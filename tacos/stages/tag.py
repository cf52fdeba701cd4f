"""Stage `tag`: LLM open tagging — one call per record returns intention tags with a short explanation each."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tacos.config import to_container
from tacos.records import Record, iter_jsonl, write_jsonl
from tacos.stages.common import (check_errors, empty_plan, fill, instruction_text, load_pool, pool_for_plan,
                                 prompts_hash, read_prompt)

COMPONENTS = ("tagger",)
SHAREABLE = True  # output depends only on config + inputs: computed once across runs (tacos.store)


@dataclass
class OpenTagger:
    name: str = "open_tag"
    system_prompt: str = "tag_system.txt"
    user_prompt: str = "tag_user.txt"
    include_input: bool = False
    max_tags: int = 5
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 160

    def validate(self) -> None:
        self.prompt_hash()  # raises with the list of available prompts when a file is missing
        if self.max_tags < 1:
            raise ValueError("tagger.max_tags must be >= 1")

    def prompt_hash(self) -> str:
        return prompts_hash(self.system_prompt, self.user_prompt)

    def schema(self) -> dict:
        item = {"type": "object", "properties": {"tag": {"type": "string"}, "explanation": {"type": "string"}},
                "required": ["tag", "explanation"]}
        return {"type": "object", "properties": {"tags": {"type": "array", "items": item, "minItems": 1,
                                                          "maxItems": self.max_tags}},
                "required": ["tags"]}

    def requests(self, records: list[Record]) -> list:
        from tacos.llm.client import LLMRequest

        system, user, phash = read_prompt(self.system_prompt), read_prompt(self.user_prompt), self.prompt_hash()
        schema = self.schema()
        return [LLMRequest(messages=(("system", system.strip()),
                                     ("user", fill(user, instruction=instruction_text(r, self.include_input),
                                                   max_tags=self.max_tags))),
                           prompt_hash=phash, temperature=self.temperature, top_p=self.top_p,
                           max_tokens=self.max_tokens, schema=schema, label=r.id)
                for r in records]

    def parse(self, raw: str) -> list[dict]:
        """A non-empty list of {tag, explanation}; accepts {"tags": [...]} or a bare list (the reference format)."""
        from tacos.llm.parsing import ParseError, extract_json

        data = extract_json(raw)
        if isinstance(data, dict):
            data = data.get("tags", data.get("tag"))
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise ParseError("expected a JSON list of {tag, explanation}")
        tags: list[dict] = []
        seen: set[str] = set()
        for item in data:
            tag = item.get("tag") if isinstance(item, dict) else item if isinstance(item, str) else None
            if not isinstance(tag, str) or not tag.strip() or len(tag) > 100:
                continue
            key = tag.strip()
            if key in seen:
                continue
            seen.add(key)
            expl = item.get("explanation", "") if isinstance(item, dict) else ""
            tags.append({"tag": key, "explanation": str(expl).strip()})
        if not tags:
            raise ParseError("no usable tag in the answer")
        return tags[: self.max_tags]


@dataclass
class ReferenceTagFile:
    """Tags computed elsewhere: JSONL rows with "id" (record id) or "index" (row index) and "tags"."""

    name: str = "reference_files"
    path: str = ""

    def validate(self) -> None:
        if not Path(self.path).is_file():
            raise FileNotFoundError(f"tagger.path: tag file {self.path!r} does not exist")

    def tags_for(self, records: list[Record]) -> dict[str, list[dict]]:
        by_id = {r.id: r for r in records}
        by_index = {r.index: r for r in records}
        out: dict[str, list[dict]] = {}
        for k, row in enumerate(iter_jsonl(self.path)):
            rec = by_id.get(row.get("id")) or by_index.get(row.get("index"))
            if rec is None:
                continue
            tags = [t if isinstance(t, dict) else {"tag": t, "explanation": ""} for t in row.get("tags", [])]
            tags = [{"tag": str(t.get("tag", "")).strip(), "explanation": t.get("explanation", "")} for t in tags]
            out[rec.id] = [t for t in tags if t["tag"]]
        return out


def requires(cfg) -> list[str]:
    return ["data"]


def uses_llm(cfg) -> bool:
    return cfg.tagger._target_.endswith("OpenTagger")


def config_slice(cfg) -> dict:
    slice_ = to_container(cfg.tagger)
    if uses_llm(cfg):
        slice_["prompt_hash"] = OpenTagger(**{k: v for k, v in slice_.items() if k != "_target_"}).prompt_hash()
    return slice_


def run(ctx) -> dict:
    records = load_pool(ctx)
    tagger = ctx.component("tagger")
    rows, invalid = [], []
    n_err = 0
    if isinstance(tagger, ReferenceTagFile):
        found = tagger.tags_for(records)
        for r in records:
            tags = found.get(r.id)
            rows.append({"id": r.id, "index": r.index, "status": "ok" if tags else "missing", "tags": tags or []})
    else:
        results = ctx.llm.run(tagger.requests(records), tagger.parse, desc="tag")
        n_err = check_errors(ctx, results, "tag")
        for r, res in zip(records, results):
            rows.append({"id": r.id, "index": r.index, "status": res.status, "tags": res.parsed or [],
                         "cache_key": res.key})
            if res.status != "ok":
                invalid.append({"id": r.id, "index": r.index, "status": res.status, "raw": res.raw,
                                "error": res.error})
    write_jsonl(ctx.out_dir / "tags.jsonl", rows)
    write_jsonl(ctx.out_dir / "invalid.jsonl", invalid)
    ok = [r for r in rows if r["status"] == "ok"]
    n_tags = sum(len(r["tags"]) for r in ok)
    return {
        "counts": {"records": len(rows), "tagged": len(ok), "invalid": len(rows) - len(ok) - n_err,
                   "errors": n_err, "tags": n_tags},
        "stats": {"invalid_rate": round((len(rows) - len(ok)) / max(1, len(rows)), 4),
                  "mean_tags_per_record": round(n_tags / max(1, len(ok)), 3)},
    }


def plan(ctx) -> dict:
    if not uses_llm(ctx.cfg):
        return empty_plan()
    reqs = ctx.component("tagger").requests(pool_for_plan(ctx))
    return {**ctx.llm.forecast(reqs), "exact": True}


__all__ = ["OpenTagger", "ReferenceTagFile"]
