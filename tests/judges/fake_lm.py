"""A scoring model with scripted log-probabilities (no torch): per-token log-probabilities that depend only on whether
the context holds the instruction, so a known likelihood gain gives a known order."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakeLM:
    """log P(token) = `cond[target]` after an instruction, `uncond[target]` after the bare header, per token (tokens =
    words); the end-of-turn log-probability = `end[target]` (default -0.1)."""

    cond: dict = field(default_factory=dict)
    uncond: dict = field(default_factory=dict)
    end: dict = field(default_factory=dict)
    identity: str = "fake:lm"
    max_target_tokens: int = 512
    calls: int = 0

    def validate(self) -> None:
        return None

    def chat_prefix(self, user: str) -> str:
        return f"<user>{user}</user><assistant>"

    def bare_prefix(self) -> str:
        return "<assistant>"

    def score(self, requests):
        out = []
        for r in requests:
            self.calls += 1
            per = self.uncond if r.context == self.bare_prefix() else self.cond
            words = r.target.split()
            out.append(([per.get(r.target, -2.0)] * len(words), self.end.get(r.target, -0.1) if r.end else None,
                        False))
        return out

    def close(self) -> None:
        return None
