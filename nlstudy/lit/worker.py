"""The warm-start worker: imports the training stack once, then forks one child per run (see nlstudy.warm).

    python -m nlstudy.lit.worker SOCKET [--no-preload]

Started by the sweep agent (one per agent, with the agent's thread settings) and stopped with it. Each
request holds a run's command line, environment, working directory and standard streams; the child takes
them over and runs `nlstudy <command line>`. The worker replies with the child's pid, then its end (the
exit code, or minus the signal that killed it), and kills the child if the client goes away (the agent
killed the run). Only the worker's main thread exists when it forks, and it has run no torch operation,
so each child starts as a fresh process would after its imports.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import selectors
import signal
import socket
import sys
import traceback

from nlstudy.warm import HEADER

POLL_S = 0.1


def read_request(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    if len(data) < HEADER.size:
        raise ValueError("short request")
    size = HEADER.unpack(data[:HEADER.size])[0]
    data = data[HEADER.size:]
    while len(data) < size:
        more = conn.recv(size - len(data))
        if not more:
            raise ValueError("truncated request")
        data += more
    return json.loads(data), fds


def run_child(req: dict, fds: list[int], closing: list[socket.socket]) -> None:
    """In the forked child: become the run (`python -m nlstudy <argv>`, in the client's directory, environment and
    streams), then exit with its code. Never returns."""
    code = 1
    try:
        for sock in closing:
            sock.close()
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
            os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        sys.argv = ["nlstudy", *req["argv"]]
        runpy.run_module("nlstudy", run_name="__main__", alter_sys=True)  # as `python -m nlstudy ...`: exits
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def end_status(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def serve(path: str, preload: bool = True) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)  # first, so that clients can connect (and queue) while the imports run
    server.listen(16)
    if preload:  # the warm part, measured: each of these took a second or more in every run
        from nlstudy.adapters import wandb as wandb_adapter
        from nlstudy.data.synthetic import digit_images
        from nlstudy.lit.check import warm_up  # torch, torchvision, Lightning, torchmetrics

        wandb_adapter.preload()  # what wandb.init imports every run (pydantic models); says so if it moved
        digit_images()  # scikit-learn and its digits, for the embedded task (numpy only: no torch state)
        warm_up()  # the parser's caches (no torch operation, nothing instantiated)

    parent = os.getppid()
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    while os.getppid() == parent:  # the agent that started this worker is gone: stop
        for key, _ in selector.select(POLL_S):
            if key.fileobj is server:
                conn, _ = server.accept()
                try:
                    req, fds = read_request(conn)
                except (OSError, ValueError):
                    conn.close()
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    run_child(req, fds, [server, conn])
                for fd in fds:
                    os.close(fd)
                children[pid] = conn
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                selector.register(conn, selectors.EVENT_READ, pid)
            else:  # the client hung up (killed): so is its run
                with contextlib.suppress(ProcessLookupError):
                    os.kill(key.data, signal.SIGKILL)
                selector.unregister(key.fileobj)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = children.pop(pid, None)
            if conn is None:
                continue
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps({"status": end_status(status)}).encode() + b"\n")
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(conn)
            conn.close()
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    serve(sys.argv[1], preload="--no-preload" not in sys.argv[2:])  # --no-preload: tests, debugging
