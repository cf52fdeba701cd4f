"""A small local OpenAI-compatible chat server for tests and benchmarks (stdlib only). Over 300 lines: the fault
catalogue, the handler that serves it and the command line that exposes it are one tool and read best together.

In process:
    with StubServer(faults=["429", None, "truncated"]) as stub:
        ... OpenAI(base_url=stub.base_url) ...; stub.count, stub.requests, stub.max_in_flight

As a subprocess (serves until killed, one "REQUEST <n>" line per chat request on stdout or --log):
    python tests/stub_server.py --port-file F [--delay S] [--fast N] [--last-delayed N] [--responder tacos]
                                [--max-prompt-chars N] [--models-delay S] [--single-slot] [--log FILE]

Faults are consumed one per chat request, in order; once the list is empty every request is normal:
    None          normal answer
    "429" "500"   HTTP error with an OpenAI-style error body ("400" too, which clients must not retry;
                  "401" "403" "404": the endpoint refuses calls)
    "timeout"     sleep `timeout_sleep` seconds (longer than the client's timeout), then drop the connection
    "truncated"   HTTP 200 whose JSON body is cut in half (Content-Length matches the cut body)
    "disconnect"  HTTP 200 announcing the full body, half of it sent, then the connection is closed
    "malformed"   a valid completion whose assistant text no parser accepts
    "html"        HTTP 200 with an HTML page instead of JSON

`max_prompt_chars=N`: a request whose messages hold more than N characters gets llama.cpp's HTTP 400
"the request exceeds the available context size" (CONTEXT_EXCEEDED_MESSAGE). `fast=N`: the first N chat requests
skip `delay`, `last_delayed=N`: the requests after the N-th do too.

GET /models: `models_delay` seconds before the answer; `models_faults` HTTP statuses answered instead, one per GET,
in order. `single_slot=True` serves one request at a time, GET /models included, like llama-cpp-python's server
with one slot: a GET /models waits for the completion in progress, also one whose client was killed.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable, TextIO

FAULTS = (None, "429", "500", "400", "timeout", "truncated", "disconnect", "malformed", "html", "401", "403", "404",
          "429-retry-after")  # 429 with `Retry-After: 1`
_STATUS_FAULTS = ("429", "500", "400", "401", "403", "404")
# llama.cpp server's answer to a prompt longer than its context (tools/server: exceed_context_size_error).
CONTEXT_EXCEEDED_MESSAGE = "the request exceeds the available context size, try increasing it"
MALFORMED_TEXT = "<<malformed: this answer holds no JSON and no score>>"


def last_user_message(body: dict) -> str:
    users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
    return users[-1] if users else ""


def default_responder(body: dict) -> str:
    """Deterministic JSON text derived from the last user message."""
    text = last_user_message(body)
    n = int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % 10 + 1
    return json.dumps({"echo": text, "n": n})


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _logprobs(text: str, top_n: int) -> dict:
    content = []
    for i, token in enumerate(re.findall(r"\S+|\s+", text) or [""]):
        logprob = -((int(hashlib.sha256(f"{i}:{token}".encode()).hexdigest()[:4], 16) % 100) / 100)
        top = [{"token": token, "logprob": logprob, "bytes": None}]
        top += [{"token": f"alt{j}", "logprob": logprob - j, "bytes": None} for j in range(1, top_n)]
        content.append({"token": token, "logprob": logprob, "bytes": None, "top_logprobs": top[:top_n]})
    return {"content": content}


class Scripted(str):
    """A responder's answer with scripted first-token log-probabilities: Scripted("1", {"1": -0.2, "2": -1.7}).
    `finish_reason` may be scripted too (e.g. "length")."""

    def __new__(cls, text: str, top: dict[str, float] | None = None, finish_reason: str = "stop"):
        obj = super().__new__(cls, text)
        obj.top, obj.finish_reason = top or {}, finish_reason
        return obj


def _scripted_logprobs(text: str, top: dict[str, float], top_n: int) -> dict:
    ranked = sorted(top.items(), key=lambda kv: -kv[1])[:max(1, top_n)]
    entries = [{"token": t, "logprob": lp, "bytes": None} for t, lp in ranked]
    return {"content": [{"token": text, "logprob": top.get(text, ranked[0][1]), "bytes": None,
                         "top_logprobs": entries}]}


def completion_body(body: dict, text: str, number: int) -> dict:
    logprobs = None
    if body.get("logprobs"):
        top_n = int(body.get("top_logprobs") or 0)
        logprobs = _scripted_logprobs(text, text.top, top_n) if getattr(text, "top", None) else _logprobs(text, top_n)
    choice = {"index": 0, "message": {"role": "assistant", "content": str(text)},
              "finish_reason": getattr(text, "finish_reason", "stop"), "logprobs": logprobs}
    prompt_tokens = sum(_tokens(m.get("content", "")) for m in body.get("messages", []))
    completion_tokens = _tokens(text)
    return {"id": f"chatcmpl-stub-{number}", "object": "chat.completion", "created": 0,
            "model": body.get("model", "stub"), "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


class StubServer:
    def __init__(self, responder: Callable[[dict], str] | None = None, faults: Iterable[str | None] = (),
                 delay: float = 0.0, timeout_sleep: float = 2.0, port: int = 0, log: TextIO | None = None,
                 max_prompt_chars: int | None = None, fast: int = 0, last_delayed: int | None = None,
                 models_delay: float = 0.0, models_faults: Iterable[int] = (), single_slot: bool = False):
        self.responder = responder or default_responder
        self.delay = delay  # seconds every chat request takes
        self.fast = fast  # the first `fast` chat requests take no delay
        self.last_delayed = last_delayed  # the chat requests after this one take no delay
        self.models_delay = models_delay
        self.models_asked = 0  # GET /models requests received (counted on arrival, before any wait)
        self._models_faults = [int(status) for status in models_faults]
        self._slot = threading.Lock() if single_slot else contextlib.nullcontext()
        self.max_prompt_chars = max_prompt_chars  # longer prompts get llama.cpp's context-size 400
        self.too_long: list[int] = []  # numbers of the requests refused as longer than max_prompt_chars
        self.timeout_sleep = timeout_sleep
        self.requests: list[dict] = []  # chat request bodies, in arrival order
        self.faults_served: list[str | None] = []
        self.max_in_flight = 0
        self._faults = list(faults)
        for fault in self._faults:
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")
        self._port = port
        self._log = log
        self._in_flight = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("StubServer is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def start(self) -> "StubServer":
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler_for(self))
        self._server.daemon_threads = True  # a request sleeping in "timeout" must not block stop()
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="stub-server",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None

    def __enter__(self) -> "StubServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _arrive(self, body: dict) -> tuple[int, str | None]:
        with self._lock:
            self.requests.append(body)
            fault = self._faults.pop(0) if self._faults else None
            self.faults_served.append(fault)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            number = len(self.requests)
            if self._log is not None:
                self._log.write(f"REQUEST {number}\n")
                self._log.flush()
            return number, fault

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def _handler_for(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like a real server
        disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms delayed-ACK stall

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, payload: bytes, content_type: str = "application/json",
                  announced: int | None = None, headers: dict | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload) if announced is None else announced))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()

        def _error(self, status: int, message: str) -> None:
            self._send(status, json.dumps({"error": {"message": message, "type": "stub_error",
                                                     "code": status}}).encode())

        def do_GET(self) -> None:
            if not self.path.rstrip("/").endswith("/models"):
                self._error(404, f"no route GET {self.path}")
                return
            with stub._lock:
                stub.models_asked += 1
                fault = stub._models_faults.pop(0) if stub._models_faults else None
            with stub._slot:
                time.sleep(stub.models_delay)
                try:
                    if fault is not None:
                        self._error(fault, f"stub fault {fault} on GET /models")
                    else:
                        self._send(200, json.dumps({"object": "list", "data": [
                            {"id": "stub", "object": "model", "created": 0, "owned_by": "stub"}]}).encode())
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._error(404, f"no route POST {self.path}")
                return
            body = json.loads(raw)
            with stub._slot:
                self._serve_chat(body)

        def _serve_chat(self, body: dict) -> None:
            number, fault = stub._arrive(body)
            try:
                if number > stub.fast and (stub.last_delayed is None or number <= stub.last_delayed):
                    time.sleep(stub.delay)
                chars = sum(len(m.get("content") or "") for m in body.get("messages", []))
                if stub.max_prompt_chars is not None and chars > stub.max_prompt_chars and fault is None:
                    stub.too_long.append(number)
                    self._send(400, json.dumps({"error": {
                        "code": 400, "message": CONTEXT_EXCEEDED_MESSAGE, "type": "exceed_context_size_error",
                        "n_prompt_tokens": chars // 4, "n_ctx": stub.max_prompt_chars // 4}}).encode())
                    return
                self._answer(body, number, fault)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (its timeout): nothing to answer
            finally:
                stub._leave()

        def _answer(self, body: dict, number: int, fault: str | None) -> None:
            if fault in _STATUS_FAULTS:
                self._error(int(fault), f"stub fault {fault}")
            elif fault == "429-retry-after":
                self._send(429, json.dumps({"error": {"message": "slow down", "code": 429}}).encode(),
                           headers={"Retry-After": "1"})
            elif fault == "timeout":
                time.sleep(stub.timeout_sleep)
                self.close_connection = True
            elif fault == "html":
                self._send(200, b"<html><body>502 Bad Gateway</body></html>", content_type="text/html")
            else:
                text = MALFORMED_TEXT if fault == "malformed" else stub.responder(body)
                payload = json.dumps(completion_body(body, text, number)).encode()
                if fault == "truncated":
                    self._send(200, payload[: len(payload) // 2])
                elif fault == "disconnect":
                    self._send(200, payload[: len(payload) // 2], announced=len(payload))
                    self.close_connection = True
                else:
                    self._send(200, payload)

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port-file", required=True, help="file the chosen port is written to (atomically)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every chat request takes")
    parser.add_argument("--fast", type=int, default=0, help="the first N chat requests take no delay")
    parser.add_argument("--last-delayed", type=int, default=None, help="chat requests after the N-th take no delay")
    parser.add_argument("--models-delay", type=float, default=0.0, help="seconds GET /models takes")
    parser.add_argument("--single-slot", action="store_true",
                        help="one request at a time, GET /models included (llama-cpp-python with one slot)")
    parser.add_argument("--responder", choices=("default", "tacos"), default="default",
                        help="tacos: answer TACOS prompts (tests/tacos_responder.py) instead of echoing JSON")
    parser.add_argument("--max-prompt-chars", type=int, default=None,
                        help="longer prompts get llama.cpp's HTTP 400 'exceeds the available context size'")
    parser.add_argument("--log", help="request log file (default: stdout)")
    args = parser.parse_args(argv)
    log = open(args.log, "a", buffering=1) if args.log else sys.stdout
    responder = None
    if args.responder == "tacos":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from tacos_responder import tacos_responder as responder
    stub = StubServer(responder=responder, delay=args.delay, port=args.port, log=log,
                      max_prompt_chars=args.max_prompt_chars, fast=args.fast, last_delayed=args.last_delayed,
                      models_delay=args.models_delay, single_slot=args.single_slot).start()
    tmp = f"{args.port_file}.tmp"
    with open(tmp, "w") as f:
        f.write(str(stub.port))
    os.replace(tmp, args.port_file)
    try:
        stub._thread.join()
    except KeyboardInterrupt:
        stub.stop()


if __name__ == "__main__":
    main()
