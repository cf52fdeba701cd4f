"""The refiner of stage `refine` (the `refine` section of conf/config.yaml): an LLM rewrites each selected response,
and optionally each instruction, through the run's LLM session. The stage only drives it and writes the files.

The response is rewritten first; the instruction prompt then shows the rewritten response. A rewrite that cannot be
parsed keeps the original text and is counted as invalid: never silently empty.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tacos.config import check_bool, check_int, check_number
from tacos.llm.calling.parsing import ParseError, extract_json
from tacos.llm.calling.types import LLMRequest
from tacos.prompts import prompts_hash, read_prompt, render

SYSTEM_PROMPT = "refine_system.txt"


@dataclass(frozen=True)
class RefinedField:
    """One field of a row the refiner rewrites."""

    prompt: str  # the user prompt file (tacos/prompts/)
    answer_key: str  # the key of the rewrite in the LLM's JSON answer
    row_key: str  # the row's field it replaces


RESPONSE = RefinedField("refine_response.txt", "better_response", "output")
INSTRUCTION = RefinedField("refine_instruction.txt", "better_instruction", "instruction")


@dataclass
class LLMRefiner:
    """The `refine` section: what is rewritten and the sampling of the rewrite calls."""

    rewrite_instruction: bool = False
    temperature: float = 0.7
    top_p: float = 0.8
    max_tokens: int = 1024

    def validate(self) -> None:
        check_bool("refine.rewrite_instruction", self.rewrite_instruction)
        check_number("refine.temperature", self.temperature, 0.0)
        check_number("refine.top_p", self.top_p, 0.0, 1.0, low_open=True)
        check_int("refine.max_tokens", self.max_tokens, 1)

    def identity(self) -> dict:
        """What determines the rewrites besides these settings: the prompt files' bytes."""
        return {"prompt_hash": prompts_hash(SYSTEM_PROMPT, RESPONSE.prompt, INSTRUCTION.prompt)}

    def fields(self) -> list[RefinedField]:
        """The fields rewritten, in order."""
        return [RESPONSE, INSTRUCTION] if self.rewrite_instruction else [RESPONSE]

    def requests(self, rows: list[dict], field: RefinedField, seed: int) -> list[LLMRequest]:
        key = field.answer_key
        schema = {"type": "object", "properties": {key: {"type": "string"}}, "required": [key]}
        system, phash = read_prompt(SYSTEM_PROMPT).strip(), prompts_hash(SYSTEM_PROMPT, field.prompt)
        return [LLMRequest(messages=(("system", system), ("user", render(read_prompt(field.prompt),
                                                                         instruction=r["instruction"],
                                                                         response=r["output"]))),
                           prompt_hash=phash, temperature=float(self.temperature), top_p=float(self.top_p),
                           max_tokens=int(self.max_tokens), schema=schema, seed=seed, label=r["id"]) for r in rows]

    def forecast_requests(self, rows: list[dict], seed: int) -> list[LLMRequest]:
        """Every call of a run over `rows` (the instruction prompts with the original responses: an estimate)."""
        return [req for field in self.fields() for req in self.requests(rows, field, seed)]

    def refine(self, rows: list[dict], session, seed: int) -> dict[str, int]:
        """Rewrite the fields of every row in place; returns how many rewrites of each field (row key) were invalid
        (their rows keep the original text)."""
        invalid = {}
        for field in self.fields():
            results = session.run(self.requests(rows, field, seed), answer_parser(field.answer_key),
                                  desc=f"refine ({field.row_key})")
            for r, res in zip(rows, results):
                if res.status == "ok":
                    r[field.row_key] = res.parsed
            invalid[field.row_key] = sum(res.status != "ok" for res in results)
        return invalid


def answer_parser(key: str) -> Callable[[str], str]:
    """The parser of a rewrite: the non-empty string under `key` of the JSON answer."""
    def parse(raw: str) -> str:
        data = extract_json(raw)
        text = data.get(key) if isinstance(data, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ParseError(f"no non-empty {key!r} in the answer")
        return text.strip()
    return parse
