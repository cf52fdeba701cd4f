"""Process-lifecycle test helpers, the owner process those tests start and then interrupt or kill, and a fake server.

    python tests/_server_child.py dummy|llama|native sleep|raise LOG_DIR

starts a server, prints `READY <server pid>`, then sleeps or raises. `dummy` is a `sleep 60` child through
ServerProcess (no model; atexit / PDEATHSIG must clean up); `llama` is LocalLlamaCpp (llama-cpp-python) and `native`
LocalLlamaServer (llama.cpp's server through xllamacpp), each in a `with` block.

    python tests/_server_child.py fake-openai PORT MODEL_ID

is a tiny OpenAI-shaped server on 127.0.0.1:PORT (GET /v1/models lists MODEL_ID; POST /v1/chat/completions answers
"pong"); it exits with 98 when the port is taken, like tacos.llm.serving.llama_server_child.
"""
from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from tacos.llm.serving.servers import LocalLlamaCpp, LocalLlamaServer
from tacos.llm.serving.process import ServerProcess


REPO = Path(__file__).resolve().parents[1]


def gone(pid: int, within_s: float = 0.0) -> bool:
    """True once the pid no longer exists or is a zombie (whoever reaps orphans here may be slow)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def spawn_owner(log_dir: Path, kind: str = "dummy", action: str = "sleep") -> tuple[subprocess.Popen, int]:
    """Start this script as a subprocess; returns it and the pid of the server it started.

    Finish it with `owner.communicate(timeout=...)`, which also closes its stdout pipe.
    """
    err = log_dir / "owner.stderr"
    with open(err, "wb") as errf:
        owner = subprocess.Popen([sys.executable, __file__, kind, action, str(log_dir)], stdout=subprocess.PIPE,
                                 stderr=errf, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    line = owner.stdout.readline()
    if not line.startswith("READY"):
        owner.kill()
        owner.communicate()
        raise RuntimeError(f"owner process did not start its server: {line!r}\n{err.read_text()[-3000:]}")
    return owner, int(line.split()[1])


class FakeOpenAI(http.server.BaseHTTPRequestHandler):
    """GET /v1/models lists `model_id`; POST /v1/chat/completions answers "pong". Counts requests per path."""

    model_id = "fake"
    seen: list[str] = []

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.seen.append(f"GET {self.path}")
        if self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": self.model_id, "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self):  # noqa: N802
        self.seen.append(f"POST {self.path}")
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._json(200, {"id": "x", "object": "chat.completion", "created": 0, "model": self.model_id,
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": "pong"}}],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})

    def log_message(self, *args):
        pass


def fake_openai_server(model_id: str, port: int = 0) -> tuple[http.server.ThreadingHTTPServer, list[str]]:
    """A FakeOpenAI server in a daemon thread of this process (call .shutdown(); .server_close() when done)."""
    handler = type("Handler", (FakeOpenAI,), {"model_id": model_id, "seen": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, handler.seen


def _serve_fake(port: int, model_id: str) -> None:
    try:
        fake_openai_server(model_id, port)
    except OSError as e:
        print(f"fake-openai: cannot bind 127.0.0.1:{port}: {e}", flush=True)
        sys.exit(98)
    print(f"fake-openai: serving {model_id} on port {port}", flush=True)
    while True:
        time.sleep(3600)


def _then(action: str) -> None:
    if action == "raise":
        raise RuntimeError("boom inside the server's lifetime")
    time.sleep(120)


def main(kind: str, action: str, log_dir: Path) -> None:
    if kind == "dummy":
        server = ServerProcess([sys.executable, "-c", "import time; time.sleep(60)"], log_dir / "dummy.log",
                               name="dummy").spawn()
        print(f"READY {server.pid}", flush=True)
        _then(action)
    else:
        provider = LocalLlamaCpp(n_ctx=512) if kind == "llama" else LocalLlamaServer(n_ctx=512)
        with provider:
            print(f"READY {provider.pid}", flush=True)
            _then(action)


if __name__ == "__main__":
    if sys.argv[1] == "fake-openai":
        _serve_fake(int(sys.argv[2]), sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
