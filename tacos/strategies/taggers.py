"""Taggers (config group `tagger`): give every record its intention tags.

`OpenTagger` asks the LLM (one call per record, schema-constrained JSON: 1-N tags with a short explanation each);
`ReferenceTagFile` reads tags computed elsewhere. A new tagger is one class here and one YAML file in conf/tagger/.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tacos.data.formats import instruction_text
from tacos.llm.calling.types import LLMRequest
from tacos.prompts import clip, prompts_hash, read_prompt, render
from tacos.records import Record, file_sha256, iter_jsonl


class Tagger(Protocol):
    name: str
    uses_llm: bool

    def validate(self) -> None: ...
    def identity(self) -> dict: ...  # file contents that determine the tags besides the config (prompts, tag file)
    def requests(self, records: list[Record], seed: int) -> list[LLMRequest]: ...  # the LLM work ([] if none)
    def tag(self, records: list[Record], llm, seed: int) -> list[dict]: ...
    # -> one row per record: {"id", "index", "status": ok|invalid|error|missing, "tags": [{"tag", "explanation"}],
    #    ...}; rows that are not ok may carry "raw" and "error" (they go to invalid.jsonl).


@dataclass
class OpenTagger:
    name: str = "open_tag"
    system_prompt: str = "tag_system.txt"
    user_prompt: str = "tag_user.txt"
    include_input: bool = False
    max_tags: int = 5
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int | None = None  # None: the longest answer the schema allows (see `token_limit`), never a cut
    tag_max_chars: int = 40  # "1 to 3 words" (the prompt); the schema enforces it where the backend honours schemas
    explanation_max_chars: int = 80  # "at most 8 words"
    max_input_chars: int = 6000  # longer instructions are clipped (head + tail, marked) so the prompt fits n_ctx

    uses_llm = True

    def validate(self) -> None:
        self.prompt_hash()  # raises with the list of available prompts when a file is missing
        if self.max_tags < 1:
            raise ValueError("tagger.max_tags must be >= 1")

    def prompt_hash(self) -> str:
        return prompts_hash(self.system_prompt, self.user_prompt)

    def identity(self) -> dict:
        return {"prompt_hash": self.prompt_hash()}

    def schema(self) -> dict:
        item = {"type": "object", "properties": {"tag": {"type": "string", "maxLength": self.tag_max_chars},
                                                 "explanation": {"type": "string",
                                                                 "maxLength": self.explanation_max_chars}},
                "required": ["tag", "explanation"]}
        return {"type": "object", "properties": {"tags": {"type": "array", "items": item, "minItems": 1,
                                                          "maxItems": self.max_tags}},
                "required": ["tags"]}

    def token_limit(self) -> int:
        """max_tokens that fits every answer the schema allows: its longest JSON text in characters, at two
        characters per token (JSON of words runs at 3-4; a smaller ratio only wastes a reservation, never cuts)."""
        if self.max_tokens:
            return int(self.max_tokens)
        item = len('{"tag": "", "explanation": ""}, ') + self.tag_max_chars + self.explanation_max_chars
        return (len('{"tags": []}') + self.max_tags * item) // 2 + 16

    def requests(self, records: list[Record], seed: int = 0) -> list[LLMRequest]:
        system, user, phash = read_prompt(self.system_prompt), read_prompt(self.user_prompt), self.prompt_hash()
        schema, max_tokens = self.schema(), self.token_limit()
        return [LLMRequest(messages=(("system", system.strip()),
                                     ("user", render(user, instruction=clip(instruction_text(r, self.include_input),
                                                                            self.max_input_chars),
                                                     max_tags=self.max_tags))),
                           prompt_hash=phash, temperature=self.temperature, top_p=self.top_p,
                           max_tokens=max_tokens, schema=schema, seed=seed, label=r.id)
                for r in records]

    def parse(self, raw: str) -> list[dict]:
        """A non-empty list of {tag, explanation}; accepts {"tags": [...]} or a bare list (the reference format)."""
        from tacos.llm.calling.parsing import ParseError, extract_json

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
            if not isinstance(tag, str) or not tag.strip() or len(tag) > max(100, self.tag_max_chars):
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

    def tag(self, records: list[Record], llm, seed: int = 0) -> list[dict]:
        results = llm.run(self.requests(records, seed), self.parse, desc="tag")
        return [{"id": r.id, "index": r.index, "status": res.status, "tags": res.parsed or [], "cache_key": res.key,
                 **({} if res.status == "ok" else {"raw": res.raw, "error": res.error})}
                for r, res in zip(records, results)]


@dataclass
class ReferenceTagFile:
    """Tags computed elsewhere: JSONL rows with "id" (record id) or "index" (row index) and "tags"."""

    name: str = "reference_files"
    path: str = ""

    uses_llm = False

    def validate(self) -> None:
        if not Path(self.path).expanduser().is_file():
            raise FileNotFoundError(f"tagger.path: tag file {self.path!r} does not exist")

    def identity(self) -> dict:
        return {"tag_file_sha256": file_sha256(Path(self.path).expanduser())}

    def requests(self, records: list[Record], seed: int = 0) -> list[LLMRequest]:
        return []

    def tag(self, records: list[Record], llm=None, seed: int = 0) -> list[dict]:
        by_id = {r.id: r for r in records}
        by_index = {r.index: r for r in records}
        found: dict[str, list[dict]] = {}
        for row in iter_jsonl(Path(self.path).expanduser()):
            rec = by_id.get(row.get("id")) or by_index.get(row.get("index"))
            if rec is None:
                continue
            tags = [t if isinstance(t, dict) else {"tag": t, "explanation": ""} for t in row.get("tags", [])]
            tags = [{"tag": str(t.get("tag", "")).strip(), "explanation": t.get("explanation", "")} for t in tags]
            found[rec.id] = [t for t in tags if t["tag"]]
        return [{"id": r.id, "index": r.index, "status": "ok" if found.get(r.id) else "missing",
                 "tags": found.get(r.id) or []} for r in records]
