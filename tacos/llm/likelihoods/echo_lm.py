"""CompletionsEchoLM: log-probabilities of given text from an OpenAI-compatible /v1/completions endpoint that echoes
prompt log-probabilities (`echo: true, logprobs: 1`), e.g. vLLM (`vllm serve MODEL`) on a GPU machine.

The prompt is context + target (+ the end-of-turn text); the target's tokens are those whose `text_offset` falls
inside the target. llama.cpp's server does not echo prompt log-probabilities (it scores generated tokens only), so
the embedded default uses tacos.llm.likelihoods.transformers_lm instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from tacos.llm.likelihoods.likelihood import SpanRequest

CHATML = "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


@dataclass
class CompletionsEchoLM:
    base_url: str
    model: str
    api_key_env: str | None = None  # the NAME of the variable holding the key (keys never sit in configs)
    chat_template: str = CHATML  # how an instruction is laid out before the assistant turn ({user})
    assistant_header: str = "<|im_start|>assistant\n"  # the context with no instruction (IFD's denominator)
    end_text: str = "<|im_end|>"  # the end-of-turn text whose log-probability measures completeness
    max_target_tokens: int = 512
    timeout: float = 120.0

    def validate(self) -> None:
        if "{user}" not in self.chat_template:
            raise ValueError("lm.chat_template must contain {user}")

    @property
    def identity(self) -> str:
        return f"echo:{self.model}:{self.end_text}"

    def chat_prefix(self, user: str) -> str:
        return self.chat_template.replace("{user}", user)

    def bare_prefix(self) -> str:
        return self.assistant_header

    def score(self, requests: Sequence[SpanRequest]) -> list[tuple[list[float], float | None, bool]]:
        import os

        import openai

        key = os.environ.get(self.api_key_env, "") if self.api_key_env else "EMPTY"
        api = openai.OpenAI(base_url=self.base_url, api_key=key or "EMPTY", timeout=self.timeout, max_retries=3)
        out = []
        for r in requests:
            prompt = r.context + r.target + (self.end_text if r.end else "")
            resp = api.completions.create(model=self.model, prompt=prompt, max_tokens=1, echo=True, logprobs=1,
                                          temperature=0.0)
            lp = resp.choices[0].logprobs
            start, stop = len(r.context), len(r.context) + len(r.target)
            target = [x for off, x in zip(lp.text_offset, lp.token_logprobs) if start <= off < stop and x is not None]
            end = None
            if r.end:
                ends = [x for off, x in zip(lp.text_offset, lp.token_logprobs) if off == stop and x is not None]
                end = ends[0] if ends else None
            truncated = len(target) > self.max_target_tokens
            out.append((target[:self.max_target_tokens], None if truncated else end, truncated))
        return out

    def close(self) -> None:
        return None
