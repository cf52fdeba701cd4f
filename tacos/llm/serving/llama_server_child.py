"""llama.cpp's own OpenAI-compatible server (through xllamacpp) in a process of its own; `LocalLlamaServer` starts it.

    python -m tacos.llm.serving.llama_server_child --model M.gguf --port P --alias NAME [--n-ctx N] [--threads T]
                                           [--parallel S] [--params JSON]

Binds 127.0.0.1 only, serves until it is killed, and answers SIGTERM/SIGINT by exiting at once (llama.cpp's own
handler would only stop its loop and leave this process sleeping). `--params` sets further `xllamacpp.CommonParams`
fields, dotted for nested ones: '{"n_batch": 1024, "sampling.top_k": 40}'. Exit codes: 0 never (it runs until
killed), 2 bad arguments or params, 3 the server did not start (see the log), 98 the port was already taken.
"""
from __future__ import annotations

import argparse
import enum
import errno
import json
import signal
import socket
import sys
import time
from typing import Any

EXIT_BAD_ARGS = 2
EXIT_START_FAILED = 3
EXIT_PORT_TAKEN = 98  # errno EADDRINUSE: the parent picks another port and tries again
# Set by the launcher; never from --params: loopback only, one port, and the alias readiness checks for.
RESERVED = {"hostnames", "port", "reuse_port", "model_alias", "model.path", "n_ctx", "n_parallel", "api_keys",
            "cpuparams.n_threads", "cpuparams_batch.n_threads"}


def port_taken(port: int) -> bool:
    """True if something else already holds 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
    return False


def set_param(params: Any, dotted: str, value: Any) -> None:
    """params.<dotted> = value; enum fields accept a member name or number."""
    *parents, leaf = dotted.split(".")
    target = params
    for name in parents:
        target = getattr(target, name)
    if not hasattr(target, leaf):
        raise ValueError(f"xllamacpp.CommonParams has no field {dotted!r} (see the xllamacpp parameters reference)")
    current = getattr(target, leaf)
    if isinstance(current, enum.Enum) and not isinstance(value, enum.Enum):
        value = type(current)[value] if isinstance(value, str) else type(current)(value)
    setattr(target, leaf, value)


def build_params(args: argparse.Namespace, xlc: Any) -> Any:
    params = xlc.CommonParams()
    params.model.path = args.model
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.reuse_port = False  # SO_REUSEPORT would let a second server share the port silently
    params.model_alias = {args.alias}
    params.n_ctx = args.n_ctx
    params.n_parallel = args.parallel
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    for key, value in json.loads(args.params).items():
        if key in RESERVED:
            raise ValueError(f"params.{key} is set by the launcher (loopback, port, alias, n_ctx, threads); use the "
                             f"provider's own option instead")
        set_param(params, key, value)
    return params


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tacos.llm.serving.llama_server_child",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--alias", required=True)
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--params", default="{}", help="JSON object of further CommonParams fields")
    args = ap.parse_args(argv)
    if not 0 < args.port < 65536:
        print(f"--port must be 1..65535, got {args.port}", file=sys.stderr)
        return EXIT_BAD_ARGS

    import xllamacpp as xlc

    try:
        params = build_params(args, xlc)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        print(f"llama_server_child: bad --params: {e}", file=sys.stderr, flush=True)
        return EXIT_BAD_ARGS
    t0 = time.monotonic()
    try:
        server = xlc.Server(params)  # binds, loads the model, returns once it serves
    except RuntimeError as e:
        if port_taken(args.port):
            print(f"llama_server_child: port {args.port} is already in use (address already in use)",
                  file=sys.stderr, flush=True)
            return EXIT_PORT_TAKEN
        print(f"llama_server_child: the server did not start: {e}", file=sys.stderr, flush=True)
        return EXIT_START_FAILED
    # llama.cpp installed handlers that only stop its loop; the default action ends this process (and its threads)
    # at once, which is what ServerProcess.stop() and a terminal's Ctrl-C expect. Nothing here needs flushing.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    print(f"llama_server_child: serving {args.alias} on {server.listening_address} after "
          f"{time.monotonic() - t0:.1f} s (xllamacpp {getattr(xlc, '__version__', '?')})", file=sys.stderr, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
