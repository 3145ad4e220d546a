"""The `netlab` command: a thin shell over netlab.api. Parses arguments, prints, maps errors to exit codes.

Exit codes (never changed): 0 success (for `diff`: in sync); 1 error of any kind, usage errors included;
2 `diff` only: the kernel differs from the topology.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from .errors import NetlabError
    from .model import Topology
    from .plan import Plan

EXIT_OK, EXIT_ERROR, EXIT_DRIFT = 0, 1, 2

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Declare Linux network namespaces, veth pairs, bridges and addresses in YAML; make the kernel match.",
)


class Output(StrEnum):
    text = "text"
    json = "json"


FileArg = typer.Argument(..., help="The topology file (YAML).", metavar="TOPOLOGY")
OutputOpt = typer.Option(Output.text, "--output", "-o", help="text, or json (with a format_version).")
LockOpt = typer.Option(30.0, "--lock-timeout", help="Seconds to wait for another netlab run to finish.")
ForceOpt = typer.Option(False, "--force", help="Delete a namespace even with links in it that the topology "
                        "did not make (the kernel destroys them with it); the plan lists them.")


def _emit(output: Output, text: Callable[[], str], data: Callable[[], dict[str, Any]]) -> None:
    """Print the text or the JSON, whichever was asked for; the other is never built (a 1000-namespace
    plan takes a tenth of a second to turn into either)."""
    if output is Output.json:
        print(json.dumps({"format_version": 1, **data()}, indent=2))
    else:
        print(text())


def _fail(output: Output, exc: NetlabError) -> NoReturn:
    if output is Output.json:
        print(json.dumps({"format_version": 1, "error": exc.to_dict()}, indent=2))
    else:
        print(f"error: {exc.kind}: {exc}", file=sys.stderr)
    raise typer.Exit(EXIT_ERROR)


def _load(path: str, output: Output) -> Topology:
    with _whole():
        from .errors import NetlabError
        from .model import load

    try:
        return load(path)
    except NetlabError as exc:
        _fail(output, exc)


@contextmanager
def _whole() -> Iterator[None]:
    """SIGINT and SIGTERM held while the block runs (netlab's modules are imported in it): an interrupt
    that lands while pydantic builds a model class comes out of pydantic-core as a SchemaError, not as
    KeyboardInterrupt, and the command ended in a traceback (the signal suite saw it). Held, it is
    delivered when the imports are done, as an interrupt before any change."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _call(command: str, file: str, output: Output, **options: Any) -> tuple[Topology, Any]:
    """Load the file and run api.<command> on it; any netlab error becomes a message and exit 1. Returns
    the topology and what api.<command> returned (a Plan, or for `show` a State)."""
    with _whole():
        from . import api
        from .errors import NetlabError

    gc.freeze()  # what the imports made lives as long as the process: no collection walks it again
    topo = _load(file, output)
    try:
        return topo, getattr(api, command)(topo, **options)
    except NetlabError as exc:
        _fail(output, exc)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # SIGTERM is handled exactly as Ctrl-C (SIGINT); once the command has finished, both are ignored.
    # Nothing is imported here: the signal may land in the middle of an import, and importing then fails
    # on the partly initialized module (the signal suite saw it).
    if not _done:
        raise KeyboardInterrupt("SIGTERM" if signum == signal.SIGTERM else "SIGINT")


@app.command()
def validate(file: str = FileArg, output: Output = OutputOpt) -> None:
    """Check a topology file. Needs no root and never touches the kernel."""
    topo = _load(file, output)
    n_links = sum(len(ns.interfaces) for ns in topo.namespaces.values())
    _emit(output, lambda: f"{file}: valid topology '{topo.name}' ({len(topo.namespaces)} namespaces, "
                          f"{n_links} interfaces)",
          lambda: {"command": "validate", "valid": True, "topology": topo.name})


@app.command()
def diff(file: str = FileArg, output: Output = OutputOpt) -> None:
    """Show what apply would change. Exit 0 in sync, 2 drift, 1 error. Never writes."""
    global _drift
    _, plan = _call("diff", file, output)
    _emit(output, plan.render, lambda: {"command": "diff", "plan": plan.to_dict()})
    _drift = not plan.empty
    raise typer.Exit(EXIT_OK if plan.empty else EXIT_DRIFT)


@app.command()
def apply(file: str = FileArg, output: Output = OutputOpt, lock_timeout: float = LockOpt,
          force: bool = ForceOpt) -> None:
    """Make the kernel match the topology; on any failure, roll back."""
    _change("apply", file, output, lock_timeout, force)


@app.command()
def destroy(file: str = FileArg, output: Output = OutputOpt, lock_timeout: float = LockOpt,
            force: bool = ForceOpt) -> None:
    """Remove every namespace and link this topology made, and nothing else."""
    _change("destroy", file, output, lock_timeout, force)


def _change(command: str, file: str, output: Output, lock_timeout: float, force: bool) -> None:
    topo, result = _call(command, file, output, lock_timeout=lock_timeout, force=force)
    plan: Plan = result

    def text() -> str:
        if plan.empty:
            return (f"No changes. The kernel matches topology '{topo.name}'." if command == "apply"
                    else f"Nothing to destroy: no namespace or link carries the mark of topology '{topo.name}'.")
        s = plan.summary()
        done = "Apply complete" if command == "apply" else "Destroy complete"
        return plan.render().rsplit("\n", 1)[0] + f"\n{done}: {s['add']} added, {s['change']} changed, " \
                                                     f"{s['destroy']} destroyed."

    _emit(output, text, lambda: {"command": command, "changed": not plan.empty, "plan": plan.to_dict()})


@app.command()
def show(file: str = FileArg, output: Output = OutputOpt) -> None:
    """Print the live state of what the topology concerns. Never writes."""
    _, state = _call("show", file, output)

    def text() -> str:
        from .impair import summary

        lines = []
        for ns, body in state.to_dict().items():
            lines.append(f"{ns}" + (f"  (owner: {body['owner']})" if body.get("owner") else ""))
            for name, link in body["links"].items():
                attrs = ", ".join(f"{k}: {v}" for key, value in link.items() if key != "qdisc"  # a kind's options
                                  for k, v in (value.items() if key == "options" else ((key, value),)))
                lines.append(f"  {name}: {attrs}")
                qdisc = state.namespaces[ns].links[name].qdisc
                if qdisc is not None:
                    whose = "" if qdisc.ours else "  (root qdisc, not netlab's)"
                    lines.append(f"  impair {name}: {summary(qdisc)}{whose}")
            for _, route in sorted(state.namespaces[ns].routes.items()):
                owner = f"  (owner: {route.owner})" if route.owner else "  (not netlab's)"
                lines.append(f"  route {route.label}: {route.summary()}{owner}")
            for name, value in body.get("sysctls", {}).items():
                lines.append(f"  sysctl {name} = {value}")
        return "\n".join(lines)

    _emit(output, text, lambda: {"command": "show", "state": state.to_dict()})


_drift = False
_done = False  # the command has finished: a signal now is ignored


def main() -> NoReturn:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    # A run builds large structures that live until it exits and hold no garbage cycles (the states of N
    # namespaces, a plan of ~7N steps); at the default threshold (700) the cyclic GC walks them again and
    # again: 0.2-0.5 s of a star N=1000 apply. A young collection every 20,000 allocations instead.
    gc.set_threshold(20_000, 20, 20)
    global _done
    _done, finished = False, None  # (main may run more than once in a process: the tests' in-process CLI)
    try:
        try:
            app()
        except SystemExit as exc:
            # The command has finished and said so: a signal now must not turn its result into a traceback
            # (one that lands before this line is caught below, as an interrupt of the command).
            finished, _done = exc, True
    except KeyboardInterrupt:
        if finished is None:
            print("interrupted", file=sys.stderr)
            _exit_now(EXIT_ERROR)
    if finished is not None:
        code = finished.code if isinstance(finished.code, int) else EXIT_ERROR if finished.code else EXIT_OK
        if code == 130:  # the framework's exit for an interrupt outside the steps (those roll back)
            print("interrupted before a change was made or after the last one; 'netlab diff' shows the state",
                  file=sys.stderr)
            _exit_now(EXIT_ERROR)
        # The parser exits 2 on a usage error; 2 is reserved for drift, so a usage error exits 1; and
        # every other code is an error too.
        if code not in (EXIT_OK, EXIT_ERROR) and not (code == EXIT_DRIFT and _drift):
            code = EXIT_ERROR
        sys.exit(code)
    sys.exit(EXIT_OK)


def _exit_now(code: int) -> NoReturn:
    """Exit with `code` after an interrupt that was handled. Not sys.exit: CPython (3.11 at least) marks
    the process as killed by SIGINT when a KeyboardInterrupt leaves an exec() of a string, as it does when
    the signal lands while a dataclass is being defined, even if the interrupt is then caught; the process
    would exit by SIGINT (status 130) whatever code it asked for. (Found by the signal suite.)"""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
