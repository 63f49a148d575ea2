"""Rules of ``executor:`` the schema cannot say: what a Dask cluster on other machines needs,
and no key that the chosen executor would ignore."""

from __future__ import annotations

from typing import Any

from vecmig.specload.context import _Context

POSTGRES_SCHEMES = ("postgresql", "postgres")


def check_executor(ctx: _Context, spec: dict[str, Any]) -> None:
    executor = spec.get("executor") or {}
    kind = executor.get("type", "local")
    sized = [k for k in ("address", "workers", "threads_per_worker") if k in executor]
    if kind == "local" and sized:
        raise ctx.error(f"executor.{sized[0]} applies only to `type: dask`; the local executor runs shards on "
                        "threads of this process", f"/executor/{sized[0]}",
                        f"remove {sized[0]}, or add `type: dask` under executor")
    if kind != "dask" or "address" not in executor:
        return
    local_only = [k for k in ("workers", "threads_per_worker") if k in executor]
    if local_only:
        raise ctx.error(f"executor.{local_only[0]} sizes the local cluster started when no address is given; the "
                        f"cluster at {executor['address']} brings its own workers", f"/executor/{local_only[0]}",
                        f"remove {local_only[0]}, or remove address to start a local cluster")
    url = (spec.get("state") or {}).get("url")
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if isinstance(url, str) else ""
    if scheme not in POSTGRES_SCHEMES:
        where = "a SQLite file (/state)" if scheme == "" else f"{scheme} (/state/url)"
        raise ctx.error(f"executor.address runs copy shards on the cluster's machines, which cannot share the state "
                        f"in {where}", "/executor/address",
                        'put the state on PostgreSQL (`state: {url: "${env:STATE_URL}"}` with a postgresql:// URL), '
                        "or remove executor.address for a local cluster on this machine")
