"""The `vecmig` command line: Terraform's verbs, one clear line per error, exit codes 0/1/2."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from vecmig import __version__
from vecmig.errors import VecmigError
from vecmig.state.redact import Redactor

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Plan and apply migrations between vector stores.")
state_app = typer.Typer(no_args_is_help=True, help="Inspect the state store.")
app.add_typer(state_app, name="state")

_OPTS: dict[str, Any] = {"debug": False, "no_color": False, "secrets": frozenset()}

Spec_ = Annotated[Path, typer.Argument(help="Migration spec (YAML).", show_default=False)]


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
    from vecmig.spec_loader import load_spec

    spec = load_spec(path)
    _OPTS["secrets"] = spec.secrets
    return spec


def _state(spec, *, create: bool):  # type: ignore[no-untyped-def]
    from vecmig.state.store import StateStore

    return StateStore.open(spec.name, spec.state_path, spec.state_url, create=create, secrets=spec.secrets)


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


@app.command()
def plan(
    spec_path: Spec_,
    out_file: Annotated[Path | None, typer.Option("-out", "--out", help="Save the plan for `apply`.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    detailed_exitcode: Annotated[bool, typer.Option("--detailed-exitcode",
                                                    help="Exit 0 no changes, 1 error, 2 changes.")] = False,
) -> None:
    """Show what apply would do, with estimates; save it with -out."""
    from vecmig import planfile
    from vecmig.render import print_plan

    spec = _load(spec_path)
    the_plan, _ = _make_plan(spec)
    if as_json:
        sys.stdout.write(the_plan.to_json_text())
    else:
        print_plan(the_plan, out())
    if out_file is not None:
        planfile.save(the_plan, out_file, spec.source.base_dir)
        if not as_json:
            out().print(f"\nSaved the plan to {out_file}. Apply exactly this plan with: vecmig apply {out_file}")
    if detailed_exitcode and the_plan.has_changes:
        _OPTS["changes"] = True
        raise typer.Exit(2)


@app.command()
def show(plan_file: Annotated[Path, typer.Argument(help="A plan saved with `plan -out`.")],
         as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Render a saved plan."""
    from vecmig import planfile
    from vecmig.render import print_plan

    the_plan, _ = planfile.load(plan_file)
    if as_json:
        sys.stdout.write(the_plan.to_json_text())
    else:
        print_plan(the_plan, out())


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
    lock_timeout: Annotated[float, typer.Option("--lock-timeout", help="Seconds to wait for the lock.")] = 0.0,
) -> None:
    """Carry out a plan, checkpointing every acknowledged batch; run again to resume."""
    from vecmig import planfile
    from vecmig.executor import apply_plan
    from vecmig.planner import make_plan
    from vecmig.progress import RichReporter
    from vecmig.refresh import refresh
    from vecmig.render import print_plan
    from vecmig.spec_loader import load_public
    from vecmig.state.lock import Lock

    saved = planfile.looks_like_plan(target)
    if saved:
        the_plan, spec_dir = planfile.load(target)
        spec = load_public(the_plan.spec, file=str(target), base_dir=spec_dir)
        _OPTS["secrets"] = spec.secrets
    else:
        spec = _load(target)
        # Plan once before any state exists: bad input must fail without touching state.
        make_plan(spec, _state(spec, create=False), refresh(spec))
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
            the_plan = make_plan(spec, state, seen)
        print_plan(the_plan, c)
        if not the_plan.has_changes:
            return
        if not saved:
            approval = _confirm("Do you want to perform these actions?", auto_approve)
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
             lock_timeout: Annotated[float, typer.Option("--lock-timeout")] = 0.0) -> None:
    """Undo an applied or partly applied migration: recorded inverses in reverse order."""
    from vecmig.progress import RichReporter  # noqa: F401 - same console conventions
    from vecmig.rollback import pending_undo
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
        todo = pending_undo(state)
        if not todo:
            c.print("Nothing to roll back.")
            return
        c.print("vecmig will undo, in this order:\n")
        for round_no, action, _row in todo:
            c.print(f"  [bold red]<[/bold red] {action.id} (round {round_no}): {action.reverse}")
        approval = _confirm("Do you want to roll back?", auto_approve)
        n = do_rollback(spec, state, approval=approval)
        c.print(f"\n[bold green]Rollback complete![/bold green] {n} actions undone.")
    finally:
        lock.release()


@app.command("force-unlock")
def force_unlock(spec_path: Spec_, lock_id: Annotated[str, typer.Argument(help="The lock ID to remove.")]) -> None:
    """Remove a lock left by a process that is gone."""
    from vecmig.state.lock import describe
    from vecmig.state.lock import force_unlock as do_unlock

    spec = _load(spec_path)
    state = _state(spec, create=False)
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
    c.print(f"audit log: {counts['audit_events']} events, {why}; before-images: {counts['before_images']}")


@state_app.command("verify")
def state_verify(spec_path: Spec_) -> None:
    """Recompute the audit hash chain."""
    spec = _load(spec_path)
    state = _state(spec, create=False)
    if state is None:
        raise VecmigError("no state store exists for this migration", hint="nothing to verify")
    ok, why = state.verify_chain()
    if not ok:
        raise VecmigError(f"audit chain broken: {why}", hint="the state file was edited outside vecmig")
    out().print(f"[green]OK[/green]: {why}")


@app.command()
def quickstart(
    spec_path: Annotated[Path, typer.Argument(help="The quickstart spec.")] = Path("plans/quickstart.yaml"),
    records: Annotated[int, typer.Option(help="Sample records to generate in the source.")] = 5000,
) -> None:
    """Seed an embedded PostgreSQL with sample data, then plan → apply → validate → cutover."""
    from vecmig.quickstart import run

    run(spec_path, records, out())


def main() -> None:
    try:
        app()
    except SystemExit as e:
        # Usage errors exit 2 in click; 2 is reserved for "changes" (--detailed-exitcode).
        if e.code == 2 and not _OPTS.get("changes"):
            sys.exit(1)
        raise
    except VecmigError as e:
        if _OPTS["debug"]:
            raise
        err().print(Redactor(_OPTS["secrets"])(f"Error: {e.one_line()}"), markup=False, highlight=False)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err().print("Interrupted.")
        sys.exit(130)
    except Exception as e:
        if _OPTS["debug"]:
            raise
        msg = Redactor(_OPTS["secrets"])(f"{type(e).__name__}: {e}".splitlines()[0])
        err().print(f"Error: internal error: {msg} — rerun with --debug for the traceback", markup=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
