"""Warm starts: run `nlstudy fit ...` in a process forked from a worker that imported the training stack once.

A training run spends seconds importing torch, torchvision, Lightning and wandb before it trains. The sweep
agent starts one worker (:mod:`nlstudy.lit.worker`) that imports them once, and launches each run as

    python -m nlstudy.warm SOCKET fit --config ... --config args.json

instead of `nlstudy fit ...`. This client, which imports only the standard library, hands the worker its
command line, environment, working directory and standard streams; the worker forks a child that runs the
command as `nlstudy` would, with exactly those, and is its own process and its own wandb run. The client
stays in between for the agent: it forwards SIGINT, SIGTERM and SIGHUP to the run, and ends as the run
ended (its exit code, or killed by the same signal). If the client is killed, the worker kills the run; if
the worker cannot be reached, the client runs the command itself (a cold start), so a run never depends on
the worker being there.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
HEADER = struct.Struct("!I")  # the request's length, before its JSON


def request(argv: list[str]) -> bytes:
    payload = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    return HEADER.pack(len(payload)) + payload


def cold(argv: list[str]) -> None:
    """Run the command in this process's place, as `nlstudy` would have."""
    os.execv(sys.executable, [sys.executable, "-m", "nlstudy", *argv])


def main(args: list[str]) -> int:
    if not args:
        print("usage: python -m nlstudy.warm SOCKET COMMAND [ARGS...]", file=sys.stderr)
        return 2
    path, argv = args[0], args[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        socket.send_fds(sock, [request(argv)], [0, 1, 2])
        replies = sock.makefile("r")
        pid = json.loads(replies.readline())["pid"]
    except (OSError, ValueError, KeyError):
        sock.close()
        cold(argv)  # no worker (it failed to start, or has gone): start cold
        return 1  # not reached
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, frame: os.kill(pid, signum))
    line = replies.readline()
    if not line:  # the worker died under the run: nothing will report it
        print("nlstudy: the warm-start worker stopped during this run", file=sys.stderr, flush=True)
        return 1
    status = int(json.loads(line)["status"])
    if status < 0:  # killed by a signal: end the same way, so the agent records it as such
        if -status not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
