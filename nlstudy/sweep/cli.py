"""`nlstudy sweep SWEEP.yaml [SWEEP.yaml ...]`: run wandb sweep files locally (offline), or on W&B.

    nlstudy sweep sweeps/demo/2a_pairwise.yaml                 run (or resume) one sweep here
    nlstudy sweep sweeps/demo/*.yaml --jobs 2                   the demo suite, two runs at a time
    nlstudy sweep sweeps/2c_blocks.yaml --check                 validate only (the files, and this machine for them)
    nlstudy sweep sweeps/2c_blocks.yaml --check --check-only-config   the files only (on a login node)
    nlstudy sweep sweeps/2c_blocks.yaml --online                W&B's server and agents

Every file is validated before anything runs (bad input: one line on stderr, exit 2). Exit 0 when
every run this command started finished, 1 if some failed or crashed, 128 + the signal when interrupted
(130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), at any point.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nlstudy import interrupts, keys
from nlstudy.errors import one_line
from nlstudy.processes import cores
from nlstudy.sweep import online, plan
from nlstudy.sweep.agent import Agent
from nlstudy.sweep.check import CHECK_ONLY_CONFIG, check_sweeps
from nlstudy.sweep.options import Options
from nlstudy.sweep.progress import Suite
from nlstudy.sweep.spec import Sweep, SweepError, load
from nlstudy.sweep.state import ENDED, SweepState

PROG = "nlstudy sweep"


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{PROG}: error: {message}\n")


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parser() -> Parser:
    p = Parser(prog=PROG, description="Run wandb sweep files with the local agent (offline) or on W&B (--online).")
    p.add_argument("files", nargs="+", metavar="SWEEP.yaml", help="sweep files, run one after the other")
    p.add_argument("--count", type=positive, metavar="N", help="start at most N runs (over all --jobs agents)")
    p.add_argument("--no-warm", dest="warm", action="store_false",
                   help="start every `nlstudy fit` run as a fresh process (by default runs are forked from a worker "
                        "that imported torch, Lightning and wandb once: seconds saved per run)")
    p.add_argument("--no-reuse", dest="reuse", action="store_false",
                   help="run every configuration, even one that already finished under the runs root (by default "
                        "a finished run of the same configuration, e.g. the baseline every table plans, stands in)")
    p.add_argument("--jobs", type=positive, default=1, metavar="J", help="run J runs at a time; the CPU threads are split (default 1)")
    p.add_argument("--online", action="store_true", help="create the sweep on W&B and run W&B's own agents")
    p.add_argument("--runs-root", default=keys.default_runs_root(), metavar="DIR",
                   help="runs and sweep state go here (default: $NLSTUDY_RUNS_DIR or runs/)")
    p.add_argument("--sweep-id", metavar="ID", help="join (or create) the sweep with this id (default: derived from the file)")
    p.add_argument("--project", metavar="P", help="wandb project (default: the file's project, $WANDB_PROJECT or nlstudy)")
    p.add_argument("--check", action="store_true", help="validate the files, print what they would run, and exit")
    p.add_argument(CHECK_ONLY_CONFIG, dest="check_machine", action="store_false",
                   help="check the files without checking that this machine can run their runs (its GPUs and "
                        "devices): for a login node preparing a sweep for other machines")
    decided = p.add_argument_group("seeds until decided (grid sweeps with seed_everything values)")
    decided.add_argument("--until-decided", action="store_true",
                         help="after the files' seeds, add seeds in rounds (3 -> 6 -> 10) to every row whose verdict "
                              "against its baseline is undecided, until each is decided or has --max-seeds; the "
                              "looks are planned in advance and share alpha, so the error rate holds; then write the "
                              "report of the files' tables")
    decided.add_argument("--max-seeds", type=positive, default=10, metavar="N",
                         help="with --until-decided: the most seeds a row gets (default 10)")
    decided.add_argument("--out", metavar="DIR",
                         help="with --until-decided: where the report goes (default: RUNS_ROOT/report)")
    # the agents of --jobs (not for users)
    p.add_argument("--agent-of", help=argparse.SUPPRESS)
    p.add_argument("--agent-index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--started", type=float, help=argparse.SUPPRESS)
    return p


def project_of(args: argparse.Namespace, sweep: Sweep) -> str:
    return args.project or sweep.config.get("project") or os.environ.get("WANDB_PROJECT") or "nlstudy"


# SIGINT, SIGTERM, SIGHUP while the files are checked end in one line (the agents handle their own while they run)
@interrupts.one_line(PROG, "run the same command again to go on")
def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    say = lambda line: print(line, flush=True)  # noqa: E731
    if args.until_decided or args.out:  # `nlstudy sweep` hands --until-decided to nlstudy.until_decided
        print(f"{PROG}: --until-decided and --out are for `nlstudy sweep FILE --until-decided` (spelt out)",
              file=sys.stderr)
        return 2
    try:
        if args.sweep_id is not None and len(args.files) > 1:
            raise SweepError("--sweep-id: give one sweep file with a sweep id")
        sweeps = [load(f) for f in args.files]
        projects = {project_of(args, s) for s in sweeps}
        checked = None
        if args.agent_of is None:  # the agents of --jobs were started after this check
            checked = check_sweeps(sweeps, machine=args.check_machine)
            for note in checked.notes:
                say(f"{PROG}: note: {note}")
        states = [] if args.online else [joined(args, s) for s in sweeps]
        if checked is not None and not args.check:
            for state, resolved in zip(states, checked.resolved):
                state.write_resolved(resolved)  # for the agents' reuse keys
    except SweepError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    threads = max(1, cores() // args.jobs)
    if args.check:
        for s in sweeps:
            planned = s.planned_count()
            say(f"{s.path}: ok, {s.method} sweep, {planned if planned is not None else 'unbounded'} run(s), "
                f"sweep id {args.sweep_id or s.default_id}")
        return 0
    if args.online:
        entity = {s.config.get("entity") for s in sweeps} - {None}
        return online.run(sweeps, project=projects.pop() if len(projects) == 1 else "nlstudy",
                          entity=next(iter(entity), None) or os.environ.get("WANDB_ENTITY"), sweep_id=args.sweep_id,
                          count=args.count, jobs=args.jobs, threads=threads, out=say)
    options = Options(runs_root=Path(args.runs_root), project=projects.pop() if len(projects) == 1 else "nlstudy",
                      jobs=args.jobs, threads=threads, count=args.count, reuse=args.reuse, warm=args.warm)
    if args.agent_of is not None:
        options.session, options.started = args.agent_of, args.started or time.time()
        options.label = f"[agent {args.agent_index}] "
    suite = Suite(list(zip(sweeps, states)), options)
    if args.agent_of is None:
        for s, st in zip(sweeps, states):
            planned = s.planned_count()
            done = sum(r["state"] in ENDED and not r.get("retry") for r in st.records())
            say(f"sweep {st.id} ({s.path}): {s.method}, {planned if planned is not None else 'unbounded'} run(s), "
                f"{done} done; state in {st.dir}")
    if args.jobs == 1 or args.agent_of is not None:
        return Agent(suite).run()
    return run_agents(argv, options)


def joined(args: argparse.Namespace, sweep: Sweep) -> SweepState:
    """Create the sweep's state, or rejoin it; an id whose sweep was made from another config is refused."""
    state = SweepState(args.runs_root, args.sweep_id or sweep.default_id)
    if state.exists():
        try:
            info = state.info()
        except (OSError, ValueError) as e:  # written whole, so a copy cut short (or another tool) made it so
            raise SweepError(f"{state.info_file} cannot be read ({one_line(e, 120)}): was the runs root copied "
                             "halfway? Copy it again, or give another --sweep-id") from None
        if info.get("fingerprint") != sweep.fingerprint:
            raise SweepError(f"{sweep.path}: sweep {state.id} in {state.dir} was created from a different config "
                             "(was the file edited?); give another --sweep-id or drop --sweep-id for a new sweep")
        if not args.check:
            plan.ensure(state.dir)  # a sweep made before plans were written gets its plan now
        return state
    if args.check:
        return state
    try:
        state.create(sweep.text, {"source": str(sweep.path), "fingerprint": sweep.fingerprint,
                                  "project": project_of(args, sweep), "method": sweep.method})
    except OSError as e:
        raise SweepError(f"--runs-root: cannot create the sweep's state in {state.dir} ({e.strerror or e})") from None
    plan.ensure(state.dir)  # what it plans, for the report (nlstudy.records)
    return state


def run_agents(argv: list[str], options: Options) -> int:
    """--jobs J: J agent processes (each `nlstudy sweep ... --agent-of SESSION`), sharing the sweeps'
    locks. They run in a session of their own, so a signal reaches each of them once, from here: Ctrl-C
    (SIGINT from the terminal), SIGTERM and SIGHUP are passed on as they come (the second Ctrl-C kills the
    runs, as it does with one agent)."""
    base = [sys.executable, "-m", "nlstudy", "sweep", *argv, "--agent-of", options.session,
            "--started", str(options.started)]
    procs = [subprocess.Popen([*base, "--agent-index", str(i + 1)], stdin=subprocess.DEVNULL, start_new_session=True)
             for i in range(options.jobs)]

    def forward(signum, frame):
        if signum == signal.SIGHUP:
            interrupts.detach_terminal()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in interrupts.SIGNALS}
    try:
        codes = [p.wait() for p in procs]
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    stopped = [c for c in codes if c in interrupts.EXIT_CODES]
    if stopped:
        return stopped[0]
    for i, code in enumerate(codes):
        if code < 0:  # its runs were taken over: the other agents reap them (SweepState.reap) and retry them
            print(f"[agent {i + 1}] was killed by signal {-code}; a run it left is retried by the other agents, "
                  "or when the sweep is run again", flush=True)
    return 1 if min(codes) < 0 else max(codes)
