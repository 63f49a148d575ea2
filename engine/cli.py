"""The `vecmig` command line: Terraform's verbs, one clear line per error, exit codes 0/1/2."""

from __future__ import annotations

import json
import os
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from vecmig import __version__
from vecmig.errors import VecmigError
from vecmig.state.redact import Redactor

if TYPE_CHECKING:  # imported lazily at run time: `vecmig --help` stays fast
    from vecmig.model import Plan
    from vecmig.planfile import SavedPlan
    from vecmig.state.store import StateStore

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Plan and apply migrations between vector stores.")
state_app = typer.Typer(no_args_is_help=True, help="Inspect the state store.")
app.add_typer(state_app, name="state")

_OPTS: dict[str, Any] = {"debug": False, "no_color": False, "redact": Redactor()}

# Option bounds: a negative wait or count is a typo, never "forever" or "all".
MAX_LOCK_TIMEOUT = 7 * 24 * 3600.0  # a week: longer than any apply vecmig should wait behind
MAX_QUICKSTART_RECORDS = 10_000_000

Spec_ = Annotated[Path, typer.Argument(help="Migration spec (YAML).", show_default=False)]


class Format(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


class GraphFormat(StrEnum):
    mermaid = "mermaid"
    dot = "dot"


class ExportFormat(StrEnum):
    json = "json"
    jsonl = "jsonl"


def out() -> Console:
    return Console(no_color=_OPTS["no_color"] or bool(os.environ.get("NO_COLOR")), highlight=False)


def err() -> Console:
    return Console(stderr=True, no_color=_OPTS["no_color"] or bool(os.environ.get("NO_COLOR")), highlight=False,
                   soft_wrap=True)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="Plain output (also NO_COLOR=1).")] = False,
) -> None:
    _OPTS["debug"] = debug
    _OPTS["no_color"] = no_color


def _load(path: Path):  # type: ignore[no-untyped-def]
    from vecmig import planfile
    from vecmig.spec_loader import load_spec

    if path.is_file() and planfile.looks_like_plan(path):
        raise VecmigError(f"{path} is a saved plan, not a migration spec",
                          hint="pass the spec (YAML) here; `vecmig apply`, `show` and `graph` take a saved plan")
    spec = load_spec(path)
    _OPTS["redact"] = spec.redactor
    return spec


def _state(spec, *, create: bool, check_lock: bool = True):  # type: ignore[no-untyped-def]
    from vecmig.state.store import StateStore

    return StateStore.open(spec.name, spec.state_path, spec.state_url, create=create, redactor=spec.redactor,
                           check_lock=check_lock)


@app.command()
def version() -> None:
    """Print the version."""
    out().print(f"vecmig {__version__}")


@app.command()
def validate(spec_path: Spec_) -> None:
    """Check a spec without touching any store."""
    spec = _load(spec_path)
    out().print(f"[green]Spec is valid:[/green] {spec.name} · {spec.source.label} → {spec.target.label} "
                f"· {spec.strategy.type}")


@app.command()
def init(spec_path: Spec_) -> None:
    """Validate the spec, reach both stores and create the state store."""
    from vecmig.refresh import refresh

    spec = _load(spec_path)
    seen = refresh(spec, shards=False)
    store = _state(spec, create=True)
    c = out()
    c.print(f"source {spec.source.label}: {'found' if seen.source.exists else 'NOT FOUND'}")
    c.print(f"target {spec.target.label}: {'exists' if seen.target.exists else 'will be created'}")
    c.print(f"state  {store.location} (lineage {store.lineage})")


def _make_plan(spec):  # type: ignore[no-untyped-def]
    from vecmig.planner import make_plan
    from vecmig.refresh import refresh

    state = _state(spec, create=False)
    seen = refresh(spec)
    return make_plan(spec, state, seen), state


def _render(the_plan: Plan, fmt: Format, *, state: StateStore | None = None, plan_file: Path | None = None,
            spec_path: Path | None = None) -> None:
    from vecmig.render import print_plan

    if fmt is Format.json:
        sys.stdout.write(the_plan.to_json_text())
    elif fmt is Format.markdown:
        from vecmig.render_markdown import previous_run, render

        sys.stdout.write(render(the_plan, previous=previous_run(state, the_plan.round),
                                plan_file=str(plan_file) if plan_file else None,
                                spec_path=str(spec_path) if spec_path else None))
    else:
        print_plan(the_plan, out())


@app.command()
def plan(
    spec_path: Spec_,
    out_file: Annotated[Path | None, typer.Option("-out", "--out", help="Save the plan for `apply`.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON (same as --format json).")] = False,
    fmt: Annotated[Format, typer.Option("--format", help="text, json, or markdown (a pull-request comment).")]
    = Format.text,
    detailed_exitcode: Annotated[bool, typer.Option("--detailed-exitcode",
                                                    help="Exit 0 no changes, 1 error, 2 changes.")] = False,
) -> None:
    """Show what apply would do, with estimates; save it with -out."""
    from vecmig import planfile, policy

    fmt = Format.json if as_json else fmt
    if out_file is not None:
        planfile.check_out_path(out_file)  # before anything is read or planned
    spec = _load(spec_path)
    the_plan, state = _make_plan(spec)
    the_plan = policy.apply(the_plan, policy.from_spec(spec))
    _render(the_plan, fmt, state=state, plan_file=out_file, spec_path=spec_path)
    blocking = policy.errors(the_plan)
    if blocking:
        # Printed first so the reviewer sees why; not saved, since apply would refuse it anyway.
        raise policy.PolicyError(
            f"{len(blocking)} error-level lint finding(s): {', '.join(w.code for w in blocking)}"
            + (f"; the plan was not saved to {out_file}" if out_file else ""),
            hint=policy.fix_hint(blocking))
    if out_file is not None:
        planfile.save(the_plan, out_file, spec.source.base_dir, spec_file=spec_path)
        if fmt is Format.text:
            out().print(f"\nSaved the plan to {out_file}. Apply exactly this plan with: vecmig apply {out_file}")
        elif fmt is Format.markdown:
            err().print(f"Saved the plan to {out_file}.")
    if detailed_exitcode and the_plan.has_changes:
        _OPTS["changes"] = True
        raise typer.Exit(2)


@app.command()
def show(plan_file: Annotated[Path, typer.Argument(help="A plan saved with `plan -out`.")],
         as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
         fmt: Annotated[Format, typer.Option("--format", help="text, json, or markdown.")] = Format.text) -> None:
    """Render a saved plan."""
    from vecmig import planfile

    saved = planfile.open_saved(plan_file)
    fmt = Format.json if as_json else fmt
    state = _state_of_saved(saved) if fmt is Format.markdown else None
    _render(saved.plan, fmt, state=state, plan_file=plan_file)


def _state_of_saved(saved: SavedPlan) -> StateStore | None:
    """The state a saved plan was made against, for the Markdown comparison; None if unreachable."""
    from vecmig.spec_loader import load_public

    try:
        spec = load_public(saved.plan.spec, file="plan", base_dir=saved.spec_dir)
        return _state(spec, create=False)
    except VecmigError:
        return None  # e.g. a state URL whose secret is not in this environment: render without it


@app.command()
def graph(
    target: Annotated[Path, typer.Argument(help="A spec (planned now, read-only) or a saved plan file.")],
    fmt: Annotated[GraphFormat, typer.Option("--format", help="mermaid or dot.")] = GraphFormat.mermaid,
    expand: Annotated[bool, typer.Option("--expand", help="One node per copy shard, however many.")] = False,
) -> None:
    """Print the plan's action graph (Mermaid or Graphviz DOT)."""
    from vecmig import planfile
    from vecmig.graph import DEFAULT_MAX_SHARDS, to_dot, to_mermaid

    if planfile.looks_like_plan(target):
        the_plan = planfile.open_saved(target).plan
    else:
        the_plan, _ = _make_plan(_load(target))
    render = to_dot if fmt is GraphFormat.dot else to_mermaid
    sys.stdout.write(render(the_plan, None if expand else DEFAULT_MAX_SHARDS))


def _confirm(question: str, auto: bool) -> str:
    if auto:
        return "auto-approve"
    c = out()
    c.print(f"\n[bold]{question}[/bold]\n  Only 'yes' will be accepted to approve.\n")
    try:
        answer = input("  Enter a value: ").strip()
    except EOFError:
        answer = ""
    if answer != "yes":
        raise VecmigError("cancelled: nothing was changed", hint="answer 'yes', or pass --auto-approve")
    return "interactive"


@app.command()
def apply(
    target: Annotated[Path, typer.Argument(help="A spec (plans and applies) or a saved plan file.")],
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Skip the 'yes' prompt.")] = False,
    lock_timeout: Annotated[float, typer.Option("--lock-timeout", min=0, max=MAX_LOCK_TIMEOUT,
                                                help="Seconds to wait for the lock.")] = 0.0,
    allow_destructive: Annotated[bool, typer.Option(
        "--allow-destructive", help="Allow actions that delete data (delete_extra, decommission).")] = False,
) -> None:
    """Carry out a plan, checkpointing every acknowledged batch; run again to resume."""
    from vecmig import planfile, policy
    from vecmig.executor import apply_plan
    from vecmig.planner import make_plan
    from vecmig.progress import RichReporter
    from vecmig.refresh import refresh
    from vecmig.render import print_plan
    from vecmig.spec_loader import load_public
    from vecmig.state.lock import Lock

    saved = planfile.looks_like_plan(target)
    if saved:
        saved_plan = planfile.open_saved(target)
        planfile.check_spec_unchanged(saved_plan, target)
        the_plan, spec_dir = saved_plan.plan, saved_plan.spec_dir
        spec = load_public(the_plan.spec, file=str(target), base_dir=spec_dir)
        _OPTS["redact"] = spec.redactor
        the_plan = policy.apply(the_plan, policy.from_spec(spec))
        policy.check_apply_allowed(the_plan, allow_destructive=allow_destructive)
    else:
        spec = _load(target)
        # Plan once before any state exists: bad input (or a plan policy refuses) must fail
        # without touching state.
        first = make_plan(spec, _state(spec, create=False), refresh(spec))
        policy.check_apply_allowed(policy.apply(first, policy.from_spec(spec)), allow_destructive=allow_destructive)
    c = out()
    state = _state(spec, create=True)
    lock = Lock(state, "apply")
    lock.acquire(timeout=lock_timeout)
    try:
        seen = refresh(spec)
        if saved:
            planfile.check_fresh(the_plan, state, seen)
            approval = "saved-plan"
        else:
            the_plan = policy.apply(make_plan(spec, state, seen), policy.from_spec(spec))
            policy.check_apply_allowed(the_plan, allow_destructive=allow_destructive)
        print_plan(the_plan, c)
        if not the_plan.has_changes:
            return
        if not saved:
            approval = _confirm("Do you want to perform these actions?", auto_approve)
        # What was authorised, and by which flags, goes on record before anything runs.
        state.audit_event("apply_authorised", {
            "round": the_plan.round, "plan_hash": the_plan.plan_hash, "spec_hash": the_plan.spec_hash,
            "approval": approval, "plan_file": str(target) if saved else None,
            "allow_destructive": allow_destructive,
            "destructive_actions": [a.id for a in the_plan.actions if a.destructive],
            "findings": [{"code": w.code, "severity": w.severity} for w in the_plan.warnings]})
        started = time.monotonic()
        with RichReporter(c, the_plan) as reporter:
            result = apply_plan(spec, the_plan, state, approval=approval, reporter=reporter)
        elapsed = time.monotonic() - started
        records = result["records"]
        rate = records / result["copy_seconds"] if result["copy_seconds"] > 0 else 0.0
        c.print(f"\n[bold green]Apply complete![/bold green] {len(the_plan.actions)} actions in {elapsed:.1f}s; "
                f"copied {records:,} records at {rate:,.0f} records/s. "
                f"State: {state.location} (serial {state.serial}).")
        c.print(f"Undo everything with: vecmig rollback {target if not saved else 'SPEC'}")
    finally:
        lock.release()


@app.command()
def rollback(spec_path: Spec_,
             auto_approve: Annotated[bool, typer.Option("--auto-approve")] = False,
             lock_timeout: Annotated[float, typer.Option("--lock-timeout", min=0, max=MAX_LOCK_TIMEOUT,
                                                         help="Seconds to wait for the lock.")] = 0.0) -> None:
    """Undo an applied or partly applied migration: recorded inverses in reverse order."""
    from vecmig.progress import RichReporter  # noqa: F401 - same console conventions
    from vecmig.rollback import check_state, pending_undo, unfinished_rounds
    from vecmig.rollback import rollback as do_rollback
    from vecmig.state.lock import Lock

    spec = _load(spec_path)
    state = _state(spec, create=False)
    c = out()
    if state is None:
        c.print("Nothing to roll back: this migration was never applied.")
        return
    lock = Lock(state, "rollback")
    lock.acquire(timeout=lock_timeout)
    try:
        check_state(state)  # before listing anything: a tampered store is refused outright
        todo = pending_undo(state)
        if not todo and not unfinished_rounds(state):
            c.print("Nothing to roll back.")
            return
        c.print("vecmig will undo, in this order:\n")
        for round_no, action, _row in todo:
            c.print(f"  [bold red]<[/bold red] {action.id} (round {round_no}): {action.reverse}")
        approval = _confirm("Do you want to roll back?", auto_approve)
        n = do_rollback(spec, state, approval=approval, checked=True)
        c.print(f"\n[bold green]Rollback complete![/bold green] {n} actions undone.")
    finally:
        lock.release()


@app.command("force-unlock")
def force_unlock(spec_path: Spec_, lock_id: Annotated[str, typer.Argument(help="The lock ID to remove.")]) -> None:
    """Remove a lock left by a process that is gone."""
    from vecmig.state.lock import describe
    from vecmig.state.lock import force_unlock as do_unlock

    spec = _load(spec_path)
    state = _state(spec, create=False, check_lock=False)  # a lock row that is not vecmig's is what it removes
    if state is None:
        raise VecmigError("no state store exists for this migration", hint="nothing to unlock")
    holder = do_unlock(state, lock_id)
    out().print(f"Removed {describe(holder)}.")


@state_app.command("list")
def state_list(spec_path: Spec_) -> None:
    """List rounds and actions recorded in state."""
    from vecmig.render import state_table

    spec = _load(spec_path)
    state = _state(spec, create=False)
    c = out()
    if state is None:
        c.print("No state yet: this migration was never applied.")
        return
    rows = [{"round": a["round"], "action": a["action_id"], "kind": a["kind"], "status": a["status"],
             "records": a["records"], "est s": f"{a['est_seconds_low']:.1f}–{a['est_seconds_high']:.1f}",
             "actual s": a["actual_seconds"]} for a in state.all_actions()]
    c.print(state_table(rows, f"{spec.name}: actions"))


@state_app.command("show")
def state_show(spec_path: Spec_, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the whole state: meta, rounds, runs, resources, lock and audit summary."""
    from vecmig.render import state_table
    from vecmig.state.lock import Lock

    spec = _load(spec_path)
    state = _state(spec, create=False)
    c = out()
    if state is None:
        c.print("No state yet: this migration was never applied.")
        return
    meta = state.meta()
    lock = Lock(state, "show").current()
    rounds = [{k: r[k] for k in ("round", "status", "plan_hash", "source_fingerprint", "target_fingerprint",
                                 "created", "updated")} for r in state.rounds()]
    runs = [{k: r[k] for k in ("id", "round", "operation", "status", "user", "host", "approval", "started",
                               "finished", "error")} for r in state.runs()]
    resources = [{k: r[k] for k in ("id", "round", "action_id", "kind", "side", "name", "state")}
                 for r in state.resources()]
    ok, why = state.verify_chain()
    if as_json:
        sys.stdout.write(json.dumps({"meta": meta, "lock": lock, "rounds": rounds, "runs": runs,
                                     "resources": resources, "counts": state.counts(),
                                     "audit": {"ok": ok, "detail": why}}, indent=2, default=str) + "\n")
        return
    c.print(f"[bold]{spec.name}[/bold] · state {state.location} · schema {meta['schema_version']} · "
            f"lineage {meta['lineage']} · serial {meta['serial']}")
    c.print(f"lock: {lock['lock_id'] + ' held by ' + str(lock['user']) + '@' + str(lock['host']) if lock else 'free'}")
    c.print(state_table(rounds, "rounds"))
    c.print(state_table(runs, "runs"))
    c.print(state_table(resources, "resources (journal)"))
    counts = state.counts()
    # `why` already counts the events ("20 events, chain intact (head: ...)").
    chain = why if ok else f"{counts['audit_events']} events, chain BROKEN: {why}"
    c.print(f"audit log: {chain}; before-images: {counts['before_images']}")


@state_app.command("verify")
def state_verify(spec_path: Spec_) -> None:
    """Recompute the audit hash chain and its head, and the stored checksums and results."""
    spec = _load(spec_path)
    state = _state(spec, create=False)
    if state is None:
        raise VecmigError("no state store exists for this migration", hint="nothing to verify")
    ok, why = state.verify_chain()
    problems = state.verify_records()
    if not ok:
        also = f"; also {len(problems)} stored record(s) disagree with the log" if problems else ""
        raise VecmigError(f"audit chain broken: {why}{also}", hint="the state store was changed outside vecmig; "
                          "compare with a backup or an export before trusting it")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise VecmigError(f"stored state disagrees with the audit log: {problems[0]}{more}",
                          hint="the state store was changed outside vecmig; `vecmig state export` shows both copies")
    checked = len(state.rounds()) + len(state.runs()) + sum(1 for a in state.all_actions() if a["result_json"])
    images = state.counts()["before_images"]
    out().print(f"[green]OK[/green]: {why}; {checked} stored plans, runs and results match the log, as do the "
                f"actions, the resource journal and {images} before-image(s) rollback would use")


@state_app.command("history")
def state_history(spec_path: Spec_,
                  limit: Annotated[int, typer.Option("--limit", min=0,
                                                    help="Show only the last N events (0: all).")] = 0,
                  ) -> None:
    """The audit log as a table: seq, time, event, who, summary."""
    from vecmig.render import history_table

    spec = _load(spec_path)
    state = _state(spec, create=False)
    if state is None:
        out().print("No state yet: this migration was never applied.")
        return
    events = state.audit_events()
    shown = events[-limit:] if limit > 0 else events
    c = out()
    c.print(history_table(shown, f"{spec.name}: audit history ({len(shown)} of {len(events)} events)"))
    ok, why = state.verify_chain()
    c.print(f"chain: {'[green]' if ok else '[bold red]'}{why}{'[/green]' if ok else '[/bold red]'}")


@state_app.command("export")
def state_export(
    spec_path: Spec_,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="json (one document) or jsonl (one row a line).")]
    = ExportFormat.json,
    out_file: Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")] = None,
) -> None:
    """Write the whole history (meta, rounds, runs, actions, resources, audit) for auditors."""
    from vecmig import safe_paths
    from vecmig.state import export

    if out_file is not None:
        safe_paths.ensure_file(out_file, "export file (-o)",
                               hint=f"export to a regular file, or omit -o for stdout; {safe_paths.REGULAR_ONLY}")
    spec = _load(spec_path)
    state = _state(spec, create=False)
    if state is None:
        raise VecmigError("no state store exists for this migration", hint="nothing to export")
    redact = spec.redactor  # the state holds no secrets; this makes sure the export cannot either
    if fmt is ExportFormat.jsonl:
        text = "".join(redact(json.dumps(line, sort_keys=True, ensure_ascii=False)) + "\n"
                       for line in export.lines(state))
    else:
        text = redact(json.dumps(export.document(state), sort_keys=True, indent=2, ensure_ascii=False)) + "\n"
    if out_file is None:
        sys.stdout.write(text)
        return
    safe_paths.ensure_file(out_file, "export file (-o)")  # again: the export may have taken a while
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(text)
    err().print(f"Exported the state of {spec.name} to {out_file} ({fmt.value}, validated by "
                f"schemas/{export.SCHEMA_NAME}.json).")


@state_app.command("upgrade")
def state_upgrade(spec_path: Spec_) -> None:
    """Upgrade the state store's schema to this vecmig's version, after backing it up."""
    from vecmig.state.upgrade import upgrade

    spec = _load(spec_path)
    report = upgrade(spec.name, spec.state_path, spec.state_url, redactor=spec.redactor)
    c = out()
    if not report.steps:
        c.print(f"State schema is already at version {report.to_version}; nothing to do.")
        return
    c.print(f"Backed up the state to {report.backup}.")
    for step in report.steps:
        c.print(f"  upgraded {step}")
    c.print(f"[green]State schema upgraded from version {report.from_version} to {report.to_version}.[/green]")


@app.command()
def quickstart(
    spec_path: Annotated[Path, typer.Argument(help="The quickstart spec.")] = Path("plans/quickstart.yaml"),
    records: Annotated[int, typer.Option(min=1, max=MAX_QUICKSTART_RECORDS,
                                         help="Sample records to generate in the source.")] = 5000,
) -> None:
    """Seed an embedded PostgreSQL with sample data, then plan → apply → validate → cutover."""
    from vecmig.quickstart import run

    run(spec_path, records, out())


def _cap_malloc_arenas() -> None:
    """At most two glibc malloc arenas for this process.

    glibc gives threads their own arenas (up to eight per core) and an arena keeps its
    high-water mark; copy shards start fresh reader and writer threads all along a run, so
    peak RSS crept up with the run's length: 158 → 181 MiB from 100k to 1M records × 384
    dims, against 154 MiB at 1M with two arenas, and no slower (bench/run.py, 2 cores).
    Must run before any thread starts; a no-op where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


class _RedactedStream:
    """stdout/stderr as vecmig writes them: every write passes the spec's redactor, so no
    secret (nor a resolved ``${env:...}`` value) leaves through any path: rich output,
    warnings, a ``--debug`` traceback. Messages are redacted where they are made too; this
    is the net under them."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(_OPTS["redact"](text) if text else text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _terminate(signum: int, frame: Any) -> None:
    from vecmig.errors import Terminated

    raise Terminated(signum)


def _handle_stop_signals() -> None:
    """SIGINT, SIGTERM (docker stop, Kubernetes, systemd, CI cancellation) and SIGHUP unwind
    like Ctrl-C: ``finally`` blocks release the lock, runs close as interrupted, and vecmig
    exits 128 + the signal's number. apply replaces this with a graceful stop after the
    batch in flight (executor.stop_on_signals)."""
    import signal

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None:
            signal.signal(signum, _terminate)


def _stopped(e: BaseException) -> int | None:
    """The signal that stopped vecmig, if ``e`` (or what it was raised from) is a stop.

    Typer turns any KeyboardInterrupt (:class:`Terminated` is one) into a silent exit 130,
    whatever the signal was; the signal is found again on the exception chain."""
    from vecmig.errors import Terminated

    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, Terminated):
            return cur.signum
        cur = cur.__cause__ or cur.__context__
    return None


def _exit_stopped(signum: int) -> None:
    import signal

    name = signal.Signals(signum).name
    err().print(f"Interrupted by {name}: stopped before finishing; run the same command again to finish.",
                markup=False, highlight=False)
    sys.exit(128 + signum)


def main() -> None:
    from vecmig.errors import Terminated

    _cap_malloc_arenas()
    _handle_stop_signals()
    sys.stdout = _RedactedStream(sys.stdout)
    sys.stderr = _RedactedStream(sys.stderr)
    try:
        app()
    except SystemExit as e:
        signum = _stopped(e)
        if signum is not None:
            if _OPTS["debug"]:
                import traceback

                traceback.print_exception(e.__context__ or e)
            _exit_stopped(signum)
        if e.code == 130:
            _exit_stopped(2)
        # Usage errors exit 2 in click; 2 is reserved for "changes" (--detailed-exitcode).
        if e.code == 2 and not _OPTS.get("changes"):
            sys.exit(1)
        raise
    except VecmigError as e:
        if _OPTS["debug"]:
            import traceback

            traceback.print_exc()  # the traceback asked for, then the exit code the error has
            sys.exit(e.exit_code)
        err().print(_OPTS["redact"](f"Error: {e.one_line()}"), markup=False, highlight=False)
        sys.exit(e.exit_code)
    except Terminated as e:
        if _OPTS["debug"]:
            import traceback

            traceback.print_exc()
        _exit_stopped(e.signum)
    except KeyboardInterrupt:
        _exit_stopped(2)
    except Exception as e:
        if _OPTS["debug"]:
            raise
        msg = _OPTS["redact"](f"{type(e).__name__}: {e}".splitlines()[0])
        err().print(f"Error: internal error: {msg} — rerun with --debug for the traceback", markup=False)
        sys.exit(1)

if __name__ == "__main__":
    main()
