"""The `vecmig` command line: Terraform's verbs, one clear line per error, exit codes 0/1/2.

Each command parses its arguments, calls one operation (`vecmig.operations`) with a request
and a terminal Ui, and renders the result; main() maps errors and signals to exit codes.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from vecmig import __version__
from vecmig.errors import VecmigError
from vecmig.state.redact import Redactor

if TYPE_CHECKING:  # imported lazily at run time: `vecmig --help` stays fast
    from vecmig.actions import Reporter
    from vecmig.model import Action, Plan
    from vecmig.operations.apply import ApplyResult
    from vecmig.operations.ui import Approval
    from vecmig.state.store import StateStore

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Plan and apply migrations between vector stores.")
state_app = typer.Typer(no_args_is_help=True, help="Inspect the state store.")
app.add_typer(state_app, name="state")

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


@dataclass
class Options:
    """What the root options and the loaded spec tell every command, and main() after it: the
    typer context object, made by main() (or by the root callback when the app runs alone)."""

    debug: bool = False
    no_color: bool = False
    redact: Redactor = field(default_factory=Redactor)  # the loaded spec's, once there is one
    changes: bool = False  # exit 2 means "changes present" (--detailed-exitcode), not a usage error

    def out(self) -> Console:
        return Console(no_color=self.no_color or bool(os.environ.get("NO_COLOR")), highlight=False)

    def err(self) -> Console:
        return Console(stderr=True, no_color=self.no_color or bool(os.environ.get("NO_COLOR")), highlight=False,
                       soft_wrap=True)


def _opts(ctx: typer.Context) -> Options:
    return ctx.ensure_object(Options)


class Terminal:
    """The operations' Ui on a terminal: rich output, a 'yes' prompt, a progress bar."""

    def __init__(self, opts: Options, *, plan_format: Format = Format.text, plan_file: Path | None = None,
                 spec_path: Path | None = None) -> None:
        self.opts = opts
        self.console = opts.out()
        self.plan_format, self.plan_file, self.spec_path = plan_format, plan_file, spec_path

    def redact_with(self, redactor: Redactor) -> None:
        self.opts.redact = redactor

    def show_plan(self, plan: Plan, state: StateStore | None) -> None:
        from vecmig.render import print_plan

        if self.plan_format is Format.json:
            sys.stdout.write(plan.to_json_text())
        elif self.plan_format is Format.markdown:
            from vecmig.render_markdown import previous_run, render

            sys.stdout.write(render(plan, previous=previous_run(state, plan.round),
                                    plan_file=str(self.plan_file) if self.plan_file else None,
                                    spec_path=str(self.spec_path) if self.spec_path else None))
        else:
            print_plan(plan, self.console)

    def show_undo(self, steps: tuple[Action, ...]) -> None:
        self.console.print("vecmig will undo, in this order:\n")
        for step in steps:
            self.console.print(f"  [bold red]<[/bold red] {step.params['action']} (round {step.params['round']}): "
                               f"{step.reason}")

    def confirm(self, question: str) -> Approval:
        self.console.print(f"\n[bold]{question}[/bold]\n  Only 'yes' will be accepted to approve.\n")
        try:
            answer = input("  Enter a value: ").strip()
        except EOFError:
            answer = ""
        if answer != "yes":
            raise VecmigError("cancelled: nothing was changed", hint="answer 'yes', or pass --auto-approve")
        return "interactive"

    def progress(self, actions: tuple[Action, ...]) -> AbstractContextManager[Reporter]:
        from vecmig.progress import RichReporter

        return RichReporter(self.console, actions)

    def say(self, line: str) -> None:
        self.console.print(line)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="Plain output (also NO_COLOR=1).")] = False,
) -> None:
    opts = _opts(ctx)
    opts.debug = debug
    opts.no_color = no_color


@app.command()
def version(ctx: typer.Context) -> None:
    """Print the version."""
    _opts(ctx).out().print(f"vecmig {__version__}")


@app.command()
def providers(ctx: typer.Context) -> None:
    """List the stores vecmig can reach here, and how to connect to each."""
    from vecmig.operations.providers import list_providers

    c = _opts(ctx).out()
    for store in list_providers():
        state = "" if store.installed else f"  [yellow](not installed: {store.missing})[/yellow]"
        c.print(f"[bold]{store.name}[/bold]  {store.summary}{state}")
        if store.connection:
            c.print(f"    {store.connection}", markup=False)


@app.command()
def validate(ctx: typer.Context, spec_path: Spec_) -> None:
    """Check a spec without touching any store."""
    from vecmig.operations.plan import SpecRequest
    from vecmig.operations.plan import validate as run

    ui = Terminal(_opts(ctx))
    r = run(SpecRequest(spec_path), ui)
    ui.console.print(f"[green]Spec is valid:[/green] {r.name} · {r.source} → {r.target} · {r.strategy}")


@app.command()
def init(ctx: typer.Context, spec_path: Spec_) -> None:
    """Validate the spec, reach both stores and create the state store."""
    from vecmig.operations.plan import SpecRequest
    from vecmig.operations.plan import init as run

    ui = Terminal(_opts(ctx))
    r = run(SpecRequest(spec_path), ui)
    c = ui.console
    c.print(f"source {r.source}: {'found' if r.source_exists else 'NOT FOUND'}")
    c.print(f"target {r.target}: {'exists' if r.target_exists else 'will be created'}")
    c.print(f"state  {r.state_location} (lineage {r.lineage})")


@app.command()
def plan(
    ctx: typer.Context,
    spec_path: Spec_,
    out_file: Annotated[Path | None, typer.Option("-out", "--out", help="Save the plan for `apply`.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON (same as --format json).")] = False,
    fmt: Annotated[Format, typer.Option("--format", help="text, json, or markdown (a pull-request comment).")]
    = Format.text,
    detailed_exitcode: Annotated[bool, typer.Option("--detailed-exitcode",
                                                    help="Exit 0 no changes, 1 error, 2 changes.")] = False,
) -> None:
    """Show what apply would do, with estimates; save it with -out."""
    from vecmig.operations.plan import PlanRequest
    from vecmig.operations.plan import plan as run

    opts = _opts(ctx)
    fmt = Format.json if as_json else fmt
    ui = Terminal(opts, plan_format=fmt, plan_file=out_file, spec_path=spec_path)
    result = run(PlanRequest(spec_path, out_file), ui)
    if result.saved_to is not None:
        if fmt is Format.text:
            ui.console.print(f"\nSaved the plan to {out_file}. Apply exactly this plan with: vecmig apply {out_file}")
        elif fmt is Format.markdown:
            opts.err().print(f"Saved the plan to {out_file}.")
    if detailed_exitcode and result.plan.has_changes:
        opts.changes = True
        raise typer.Exit(2)


@app.command()
def show(ctx: typer.Context, plan_file: Annotated[Path, typer.Argument(help="A plan saved with `plan -out`.")],
         as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
         fmt: Annotated[Format, typer.Option("--format", help="text, json, or markdown.")] = Format.text) -> None:
    """Render a saved plan."""
    from vecmig.operations.plan import ShowRequest
    from vecmig.operations.plan import show as run

    fmt = Format.json if as_json else fmt
    # Markdown compares with the state's last applied round, when that state can be reached.
    run(ShowRequest(plan_file, with_state=fmt is Format.markdown), Terminal(_opts(ctx), plan_format=fmt,
                                                                             plan_file=plan_file))


@app.command()
def graph(
    ctx: typer.Context,
    target: Annotated[Path, typer.Argument(help="A spec (planned now, read-only) or a saved plan file.")],
    fmt: Annotated[GraphFormat, typer.Option("--format", help="mermaid or dot.")] = GraphFormat.mermaid,
    expand: Annotated[bool, typer.Option("--expand", help="One node per copy shard, however many.")] = False,
) -> None:
    """Print the plan's action graph (Mermaid or Graphviz DOT)."""
    from vecmig.graph import DEFAULT_MAX_SHARDS, to_dot, to_mermaid
    from vecmig.operations.plan import GraphRequest
    from vecmig.operations.plan import graph as run

    the_plan = run(GraphRequest(target), Terminal(_opts(ctx)))
    render = to_dot if fmt is GraphFormat.dot else to_mermaid
    sys.stdout.write(render(the_plan, None if expand else DEFAULT_MAX_SHARDS))


@app.command()
def apply(
    ctx: typer.Context,
    target: Annotated[Path, typer.Argument(help="A spec (plans and applies) or a saved plan file.")],
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Skip the 'yes' prompt.")] = False,
    lock_timeout: Annotated[float, typer.Option("--lock-timeout", min=0, max=MAX_LOCK_TIMEOUT,
                                                help="Seconds to wait for the lock.")] = 0.0,
    allow_destructive: Annotated[bool, typer.Option(
        "--allow-destructive", help="Allow actions that delete data (delete_extra, decommission).")] = False,
) -> None:
    """Carry out a plan, checkpointing every acknowledged batch; run again to resume."""
    from vecmig.operations.apply import ApplyRequest
    from vecmig.operations.apply import apply as run

    ui = Terminal(_opts(ctx))
    _applied(ui.console, run(ApplyRequest(target, auto_approve, lock_timeout, allow_destructive), ui), target)


def _applied(c: Console, result: ApplyResult, target: Path) -> None:
    if not result.applied:
        return  # no changes: the plan said so
    if result.paused:
        c.print(f"\n[bold yellow]Paused:[/bold yellow] {result.paused}.")
        return
    c.print(f"\n[bold green]Apply complete![/bold green] {len(result.plan.actions)} actions in {result.seconds:.1f}s; "
            f"copied {result.records:,} records at {result.rate:,.0f} records/s. "
            f"State: {result.state_location} (serial {result.serial}).")
    c.print(f"Undo everything with: vecmig rollback {target if not result.saved_plan else 'SPEC'}")


@app.command()
def rollback(ctx: typer.Context, spec_path: Spec_,
             auto_approve: Annotated[bool, typer.Option("--auto-approve")] = False,
             lock_timeout: Annotated[float, typer.Option("--lock-timeout", min=0, max=MAX_LOCK_TIMEOUT,
                                                         help="Seconds to wait for the lock.")] = 0.0,
             wave: Annotated[str | None, typer.Option(
                 "--wave", help="Strategy phased: undo only this wave ('last': the last one that ran).")] = None,
             ) -> None:
    """Undo an applied or partly applied migration: recorded inverses in reverse order."""
    from vecmig.operations.rollback import RollbackRequest
    from vecmig.operations.rollback import rollback as run

    ui = Terminal(_opts(ctx))
    result = run(RollbackRequest(spec_path, auto_approve, lock_timeout, wave), ui)
    if result.wave is not None:
        ui.console.print(f"\n[bold green]Rollback complete![/bold green] wave {result.wave}: {result.undone} "
                         "actions undone; `vecmig apply` runs it again.")
        return
    if result.outcome == "never_applied":
        ui.console.print("Nothing to roll back: this migration was never applied.")
    elif result.outcome == "nothing_left":
        ui.console.print("Nothing to roll back.")
    else:
        ui.console.print(f"\n[bold green]Rollback complete![/bold green] {result.undone} actions undone.")


class ReportFormat(StrEnum):
    markdown = "markdown"
    json = "json"


@app.command()
def report(
    ctx: typer.Context,
    spec_path: Spec_,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="markdown (for people) or json (as state keeps it).")]
    = ReportFormat.markdown,
    round_no: Annotated[int | None, typer.Option("--round", min=1, help="The report of this round.")] = None,
) -> None:
    """Show the latest query-parity (comparison) report of the migration."""
    from vecmig.operations.report import ReportRequest, comparison_report

    r = comparison_report(ReportRequest(spec_path, round_no), Terminal(_opts(ctx)))
    if fmt is ReportFormat.json:
        sys.stdout.write(json.dumps(r.to_json(), indent=2, sort_keys=True, default=str) + "\n")
    else:
        sys.stdout.write(r.markdown())


@app.command("force-unlock")
def force_unlock(ctx: typer.Context, spec_path: Spec_,
                 lock_id: Annotated[str, typer.Argument(help="The lock ID to remove.")]) -> None:
    """Remove a lock left by a process that is gone."""
    from vecmig.operations.state import ForceUnlockRequest
    from vecmig.operations.state import force_unlock as run
    from vecmig.state.lock import describe

    ui = Terminal(_opts(ctx))
    holder = run(ForceUnlockRequest(spec_path, lock_id), ui)
    ui.console.print(f"Removed {describe(holder)}.")


NO_STATE = "No state yet: this migration was never applied."


@state_app.command("list")
def state_list(ctx: typer.Context, spec_path: Spec_) -> None:
    """List rounds and actions recorded in state."""
    from vecmig.operations.state import StateRequest, state_list
    from vecmig.render import state_table

    ui = Terminal(_opts(ctx))
    r = state_list(StateRequest(spec_path), ui)
    if r.actions is None:
        ui.console.print(NO_STATE)
        return
    rows: list[dict[str, object]] = [
        {"round": a["round"], "action": a["action_id"], "kind": a["kind"], "status": a["status"],
         "records": a["records"], "est s": f"{a['est_seconds_low']:.1f}–{a['est_seconds_high']:.1f}",
         "actual s": a["actual_seconds"]} for a in r.actions]
    ui.console.print(state_table(rows, f"{r.name}: actions"))


@state_app.command("show")
def state_show(ctx: typer.Context, spec_path: Spec_, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the whole state: meta, rounds, runs, resources, lock and audit summary."""
    from vecmig.operations.state import StateRequest, state_show
    from vecmig.render import state_table

    ui = Terminal(_opts(ctx))
    r = state_show(StateRequest(spec_path), ui)
    c = ui.console
    if r is None:
        c.print(NO_STATE)
        return
    if as_json:
        sys.stdout.write(json.dumps({"meta": r.meta, "lock": r.lock, "rounds": r.rounds, "runs": r.runs,
                                     "resources": r.resources, "counts": r.counts,
                                     "audit": {"ok": r.audit_ok, "detail": r.audit_detail}}, indent=2, default=str)
                         + "\n")
        return
    meta, lock = r.meta, r.lock
    c.print(f"[bold]{r.name}[/bold] · state {r.location} · schema {meta['schema_version']} · "
            f"lineage {meta['lineage']} · serial {meta['serial']}")
    c.print(f"lock: {lock['lock_id'] + ' held by ' + str(lock['user']) + '@' + str(lock['host']) if lock else 'free'}")
    c.print(state_table(list(r.rounds), "rounds"))
    c.print(state_table(list(r.runs), "runs"))
    c.print(state_table(list(r.resources), "resources (journal)"))
    # audit_detail already counts the events ("20 events, chain intact (head: ...)").
    chain = r.audit_detail if r.audit_ok else f"{r.counts['audit_events']} events, chain BROKEN: {r.audit_detail}"
    c.print(f"audit log: {chain}; before-images: {r.counts['before_images']}")


@state_app.command("verify")
def state_verify(ctx: typer.Context, spec_path: Spec_) -> None:
    """Recompute the audit hash chain and its head, and the stored checksums and results."""
    from vecmig.operations.state import StateRequest, state_verify

    ui = Terminal(_opts(ctx))
    r = state_verify(StateRequest(spec_path), ui)
    ui.console.print(f"[green]OK[/green]: {r.chain}; {r.checked} stored plans, runs and results match the log, as "
                     f"do the actions, the resource journal and {r.before_images} before-image(s) rollback would use")


@state_app.command("history")
def state_history(ctx: typer.Context, spec_path: Spec_,
                  limit: Annotated[int, typer.Option("--limit", min=0,
                                                    help="Show only the last N events (0: all).")] = 0,
                  ) -> None:
    """The audit log as a table: seq, time, event, who, summary."""
    from vecmig.operations.state import HistoryRequest, state_history
    from vecmig.render import history_table

    ui = Terminal(_opts(ctx))
    r = state_history(HistoryRequest(spec_path, limit), ui)
    c = ui.console
    if r is None:
        c.print(NO_STATE)
        return
    c.print(history_table(list(r.events), f"{r.name}: audit history ({len(r.events)} of {r.total} events)"))
    ok = r.chain_ok
    c.print(f"chain: {'[green]' if ok else '[bold red]'}{r.chain}{'[/green]' if ok else '[/bold red]'}")


@state_app.command("export")
def state_export(
    ctx: typer.Context,
    spec_path: Spec_,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="json (one document) or jsonl (one row a line).")]
    = ExportFormat.json,
    out_file: Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")] = None,
) -> None:
    """Write the whole history (meta, rounds, runs, actions, resources, audit) for auditors."""
    from vecmig.operations.state import ExportRequest, state_export
    from vecmig.state.export import SCHEMA_NAME

    opts = _opts(ctx)
    r = state_export(ExportRequest(spec_path, "jsonl" if fmt is ExportFormat.jsonl else "json", out_file),
                     Terminal(opts))
    if r.written_to is None:
        sys.stdout.write(r.text)
        return
    opts.err().print(f"Exported the state of {r.name} to {r.written_to} ({fmt.value}, validated by "
                     f"schemas/{SCHEMA_NAME}.json).")


@state_app.command("upgrade")
def state_upgrade(ctx: typer.Context, spec_path: Spec_) -> None:
    """Upgrade the state store's schema to this vecmig's version, after backing it up."""
    from vecmig.operations.state import StateRequest, state_upgrade

    ui = Terminal(_opts(ctx))
    report = state_upgrade(StateRequest(spec_path), ui)
    c = ui.console
    if not report.steps:
        c.print(f"State schema is already at version {report.to_version}; nothing to do.")
        return
    c.print(f"Backed up the state to {report.backup}.")
    for step in report.steps:
        c.print(f"  upgraded {step}")
    c.print(f"[green]State schema upgraded from version {report.from_version} to {report.to_version}.[/green]")


@app.command()
def quickstart(
    ctx: typer.Context,
    spec_path: Annotated[Path, typer.Argument(help="The quickstart spec.")] = Path("plans/quickstart.yaml"),
    records: Annotated[int, typer.Option(min=1, max=MAX_QUICKSTART_RECORDS,
                                         help="Sample records to generate in the source.")] = 5000,
) -> None:
    """Seed an embedded PostgreSQL with sample data, then plan → apply → validate → cutover."""
    from vecmig.quickstart import QuickstartRequest, run

    ui = Terminal(_opts(ctx))
    _applied(ui.console, run(QuickstartRequest(spec_path, records), ui), spec_path)
    ui.console.print(
        "\n[bold]What happened[/bold]: vecmig read the source, planned the actions above, copied every record "
        "in checkpointed batches, built the index, compared counts, ids and checksums on both sides, and "
        "switched the live view to the new table. The old table is kept until you decommission it.\n"
        f"  inspect: vecmig state show {spec_path}\n"
        f"  plan again (no changes): vecmig plan {spec_path}\n"
        f"  roll back: vecmig rollback {spec_path}"
    )


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

    def __init__(self, stream: Any, opts: Options) -> None:
        self._stream = stream
        self._opts = opts

    def write(self, text: str) -> int:
        self._stream.write(self._opts.redact(text) if text else text)
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


def _exit_stopped(opts: Options, signum: int) -> None:
    import signal

    name = signal.Signals(signum).name
    opts.err().print(f"Interrupted by {name}: stopped before finishing; run the same command again to finish.",
                markup=False, highlight=False)
    sys.exit(128 + signum)


def main() -> None:
    from vecmig.errors import Terminated

    _cap_malloc_arenas()
    _handle_stop_signals()
    opts = Options()
    sys.stdout = _RedactedStream(sys.stdout, opts)
    sys.stderr = _RedactedStream(sys.stderr, opts)
    try:
        app(obj=opts)
    except SystemExit as e:
        signum = _stopped(e)
        if signum is not None:
            if opts.debug:
                import traceback

                traceback.print_exception(e.__context__ or e)
            _exit_stopped(opts, signum)
        if e.code == 130:
            _exit_stopped(opts, 2)
        # Usage errors exit 2 in click; 2 is reserved for "changes" (--detailed-exitcode).
        if e.code == 2 and not opts.changes:
            sys.exit(1)
        raise
    except VecmigError as e:
        if opts.debug:
            import traceback

            traceback.print_exc()  # the traceback asked for, then the exit code the error has
            sys.exit(e.exit_code)
        opts.err().print(opts.redact(f"Error: {e.one_line()}"), markup=False, highlight=False)
        sys.exit(e.exit_code)
    except Terminated as e:
        if opts.debug:
            import traceback

            traceback.print_exc()
        _exit_stopped(opts, e.signum)
    except KeyboardInterrupt:
        _exit_stopped(opts, 2)
    except Exception as e:
        if opts.debug:
            raise
        msg = opts.redact(f"{type(e).__name__}: {e}".splitlines()[0])
        opts.err().print(f"Error: internal error: {msg} — rerun with --debug for the traceback", markup=False)
        sys.exit(1)

if __name__ == "__main__":
    main()
