"""Spec files and environments for tests that run the CLI against PostgreSQL.

The DSN travels only through the environment, tagged with :data:`SECRET`, a marker that must
never reach a plan, the state, a log or an error message.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

SECRET = "s3cr3t-Pa55-do-not-leak"


def write_spec(tmp: Path, body: str) -> Path:
    p = tmp / "spec.yaml"
    p.write_text(textwrap.dedent(body))
    return p


def env_for(dsn: str) -> dict[str, str]:
    # The DSN travels only through the environment, with a marker that must never be persisted.
    sep = "&" if "?" in dsn else "?"
    return {"SOURCE_DSN": f"{dsn}{sep}application_name={SECRET}", "TARGET_DSN": f"{dsn}{sep}application_name={SECRET}"}


def big_bang_spec(tmp: Path, *, source: str = "docs", target: str = "docs_v2", batch: int = 200,
                  shard: int = 1000, extra: str = "") -> Path:
    return write_spec(tmp, f"""
        version: 1
        name: e2e
        source:
          provider: pgvector
          connection: {{dsn: "${{env:SOURCE_DSN}}"}}
          collection: {source}
          fields: {{id: id, vector: embedding, text: body}}
        target:
          provider: pgvector
          connection: {{dsn: "${{env:TARGET_DSN}}"}}
          collection: {target}
          fields: {{id: id, vector: embedding, text: body}}
          create: {{index: {{type: hnsw}}}}
        strategy: {{type: big-bang, batch_size: {batch}, concurrency: 2, shard_size: {shard}}}
        {extra}
        """)
