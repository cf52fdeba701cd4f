"""What crosses the wire: the OpenAI chat-completions request body we send and the reply we read back.

Kept apart from the client's retry and concurrency logic so that a backend quirk (a structured-output dialect, a
field some server omits) is a change here only.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from tacos.llm.calling.types import LLMRequest

# A temperature for parse retries: greedy decoding would repeat the unparsable answer word for word.
RETRY_MIN_TEMPERATURE = 0.7
STRUCTURED_OUTPUT_MODES = ("llama_cpp", "json_schema", "json_object", "none")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Servers word "the prompt does not fit" differently (llama.cpp, llama-cpp-python, vLLM, OpenAI).
_CONTEXT_EXCEEDED = re.compile(r"(?i)context (length|size|window)|maximum context|context_length_exceeded|"
                               r"exceeds? (the )?(available )?context|prompt is too long|too many tokens")


@dataclass
class Reply:
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    logprobs: list | None
    finish_reason: str | None  # "stop", "length" (cut at max_tokens), ... as the server says


class MalformedResponse(Exception):
    """HTTP 200 but not a usable chat completion (not JSON, no choices): retried like a transport error."""


def response_format(mode: str, schema: dict) -> dict | None:
    """The `response_format` that asks this kind of server for JSON following `schema`."""
    if mode == "llama_cpp":  # llama-cpp-python's extension
        return {"type": "json_object", "schema": schema}
    if mode == "json_schema":  # OpenAI, vLLM, llama.cpp's own server
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": False}}
    if mode == "json_object":
        return {"type": "json_object"}
    if mode == "none":
        return None
    raise ValueError(f"unknown structured_output mode {mode!r} ({' | '.join(STRUCTURED_OUTPUT_MODES)})")


def choice_grammar(choices: tuple[str, ...]) -> str:
    """A GBNF grammar whose only sentences are `choices` (llama.cpp's grammar syntax)."""
    import json

    return "root ::= " + " | ".join(json.dumps(c) for c in choices)


def request_body(request: LLMRequest, generation: int, model: str, structured_output: str,
                 supports_logprobs: bool, extra_body: dict, grammar: bool = False) -> dict:
    """keyword arguments of `chat.completions.create` for generation `generation` (0 = first try) of a call."""
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": [{"role": role, "content": content} for role, content in request.messages],
        "temperature": request.temperature if generation == 0 else max(request.temperature, RETRY_MIN_TEMPERATURE),
        "max_tokens": request.max_tokens,
        "top_p": request.top_p,
    }
    if request.seed is not None:
        kwargs["seed"] = request.seed + generation
    if request.schema is not None:
        fmt = response_format(structured_output, request.schema)
        if fmt is not None:
            kwargs["response_format"] = fmt
    if request.logprobs > 0 and supports_logprobs:
        kwargs["logprobs"] = True
        kwargs["top_logprobs"] = request.logprobs
    extra = dict(extra_body or {})
    if request.choices and grammar:
        extra["grammar"] = choice_grammar(request.choices)
    if extra:
        kwargs["extra_body"] = extra
    return kwargs


def read_reply(resp: Any) -> Reply:
    if isinstance(resp, str):  # the SDK hands back the text when the body is not JSON
        raise MalformedResponse(f"response body is not JSON: {resp[:120]!r}")
    choices = getattr(resp, "choices", None)
    if not choices or getattr(choices[0], "message", None) is None:
        raise MalformedResponse("response has no choices[0].message")
    text = choices[0].message.content
    if text is not None and not isinstance(text, str):
        raise MalformedResponse(f"message content is {type(text).__name__}, not text")
    usage = getattr(resp, "usage", None)
    lp = getattr(choices[0], "logprobs", None)
    logprobs = None
    if lp is not None and getattr(lp, "content", None) is not None:
        logprobs = [{"token": t.token, "logprob": t.logprob,
                     "top_logprobs": [{"token": a.token, "logprob": a.logprob} for a in (t.top_logprobs or [])]}
                    for t in lp.content]
    # A lone surrogate (an unpaired \ud83d escape some servers emit) cannot be stored as UTF-8: make it U+FFFD.
    return Reply(text=_SURROGATE.sub("\ufffd", text or ""), logprobs=logprobs,
                 finish_reason=getattr(choices[0], "finish_reason", None),
                 prompt_tokens=getattr(usage, "prompt_tokens", None),
                 completion_tokens=getattr(usage, "completion_tokens", None))


def context_exceeded(status_code: int, message: str) -> bool:
    """A 400 that says the prompt does not fit the model's context: the input's fault, not the server's."""
    return status_code in (400, 413) and bool(_CONTEXT_EXCEEDED.search(message or ""))


def is_loopback(base_url: str) -> bool:
    """Loopback URLs must never go through an http(s)_proxy: the proxy cannot reach our 127.0.0.1."""
    host = urlparse(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def retry_after_seconds(headers: Any, cap: float) -> float | None:
    """The server's Retry-After (seconds form), capped; None when absent or not a number."""
    try:
        value = float((headers or {}).get("retry-after"))
    except (TypeError, ValueError):
        return None
    return max(0.0, min(cap, value))
