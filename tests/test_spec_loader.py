"""The spec loader: good specs become the right dataclasses; bad ones say what, where, how.

Each malformed case asserts the parts of the error a user acts on: the message, the exact
``file:line:col: /pointer`` and the hint. Every case also runs with a secret in the
environment, and the secret must never show up in the error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from vecmig.errors import SpecError
from vecmig.schemas import load as load_schema
from vecmig.spec import CreateSpec, Fields, IndexSpec, MappingSpec, Spec, StrategySpec, ValidateSpec
from vecmig.spec_loader import load_public, load_spec, load_spec_text

SECRET = "S3cr3t-Pa55w0rd"
ENV = {"SOURCE_DSN": f"postgresql://app:{SECRET}@db.internal/prod", "TABLE_SECRET": f"tbl {SECRET}"}

# Line numbers matter below: appended lines start at line 10.
BASE = """\
version: 1
name: demo
source:
  provider: pgvector
  connection: {dsn: "${env:SOURCE_DSN}"}
  collection: docs
target:
  provider: jsonl
  connection: {path: out.jsonl}
"""


def load(text: str, env: dict[str, str] | None = None) -> Spec:
    return load_spec_text(text, file="s.yaml", base_dir=Path("/tmp/specs"), env=ENV if env is None else env)


def fails(text: str, env: dict[str, str] | None = None) -> SpecError:
    with pytest.raises(SpecError) as info:
        load(text, env)
    return info.value


def case(cid: str, text: str, message: str, where: str, hint: str) -> object:
    return pytest.param(text, message, where, hint, id=cid)


BAD = [
    # --- unknown keys, with did-you-mean
    case(
        "unknown-top",
        BASE + "strateg: {type: big-bang}\n",
        "unknown key 'strateg' at the top level (did you mean 'strategy'?)",
        "s.yaml:10:1: /strateg",
        "mapping, name, policy, source, state, strategy",
    ),
    case(
        "unknown-nested",
        BASE.replace("collection: docs", "colection: docs"),
        "unknown key 'colection' in /source (did you mean 'collection'?)",
        "s.yaml:6:3: /source/colection",
        "allowed keys in /source: collection, connection, fields",
    ),
    case(
        "unknown-deep",
        BASE + "  create: {dimension: 3, metrc: cosine}\n",
        "unknown key 'metrc' in /target/create (did you mean 'metric'?)",
        "s.yaml:10:26: /target/create/metrc",
        "allowed keys in /target/create: dimension, id_type, index",
    ),
    case(
        "unknown-create-under-source",
        BASE.replace("  collection: docs\n", "  collection: docs\n  create: {dimension: 3}\n"),
        "unknown key 'create' in /source",
        "s.yaml:7:3: /source/create",
        "'create' belongs under target",
    ),
    case(
        "unknown-misplaced-rename",
        BASE + "mapping: {rename: {a: b}}\n",
        "unknown key 'rename' in /mapping",
        "s.yaml:10:11: /mapping/rename",
        "rename goes under mapping.metadata",
    ),
    case(
        "unknown-completeness-typo",
        BASE + "validate: {completeness: {checksum: true}}\n",
        "unknown key 'checksum' in /validate/completeness (did you mean 'checksums'?)",
        "s.yaml:10:27: /validate/completeness/checksum",
        "allowed keys in /validate/completeness: checksums",
    ),
    # --- wrong types
    case(
        "type-batch-size",
        BASE + "strategy: {batch_size: many}\n",
        "/strategy/batch_size must be an integer, got string 'many'",
        "s.yaml:10:12: /strategy/batch_size",
        "write a whole number without quotes",
    ),
    case(
        "type-strategy-scalar",
        BASE + "strategy: big-bang\n",
        "/strategy must be a mapping, got string 'big-bang'",
        "s.yaml:10:1: /strategy",
        "indented two more spaces",
    ),
    case(
        "type-empty-value",
        BASE + "strategy:\n",
        "/strategy must be a mapping, got nothing (an empty value)",
        "s.yaml:10:1: /strategy",
        "indented",
    ),
    case(
        "type-quoted-dimension",
        BASE + "  create: {dimension: '384'}\n",
        "/target/create/dimension must be an integer, got string '384'",
        "s.yaml:10:12: /target/create/dimension",
        "without quotes",
    ),
    case(
        "type-boolean",
        BASE + "strategy: {type: blue-green, decommission: maybe}\n",
        "/strategy/decommission must be true or false, got string 'maybe'",
        "s.yaml:10:30: /strategy/decommission",
        "write true or false",
    ),
    case(
        "type-metadata",
        BASE.replace("  collection: docs\n", "  collection: docs\n  fields: {metadata: 5}\n"),
        "/source/fields/metadata must be a string or a list, got integer 5",
        "s.yaml:7:12: /source/fields/metadata",
        "a list of column names",
    ),
    case(
        "type-version-string",
        BASE.replace("version: 1", "version: '1'"),
        "/version must be an integer, got string '1'",
        "s.yaml:1:1: /version",
        "`version: 1`",
    ),
    case(
        "type-name-date",
        BASE.replace("name: demo", "name: 2024-01-01"),
        "/name must be a string, got date '2024-01-01'",
        "s.yaml:2:1: /name",
        "e.g. `name: docs-upgrade`",
    ),
    case(
        "unsupported-version",
        BASE.replace("version: 1", "version: 2"),
        "unsupported spec version 2",
        "s.yaml:1:1: /version",
        "this vecmig reads specs with `version: 1`",
    ),
    # --- missing required keys: pointed at the parent mapping
    case(
        "missing-provider",
        BASE.replace("  provider: pgvector\n", "  # no provider\n"),
        "missing required key 'provider' in /source",
        "s.yaml:3:1: /source",
        "e.g. `provider: pgvector`",
    ),
    case(
        "missing-provider-and-connection",
        "version: 1\nname: demo\nsource: {}\ntarget:\n  provider: jsonl\n  connection: {path: a}\n",
        "missing required keys 'provider' and 'connection' in /source",
        "s.yaml:3:1: /source",
        "provider",
    ),
    case(
        "missing-top-level",
        "version: 1\nsource: {provider: jsonl, connection: {path: a}}\n",
        "missing required keys 'name' and 'target' at the top level",
        "s.yaml:1:1: /",
        "add `name:` and `target:` at the top level",
    ),
    case(
        "missing-pgvector-collection",
        BASE.replace("  collection: docs\n", ""),
        "missing required key 'collection' in /source",
        "s.yaml:3:1: /source",
        "pgvector needs the table name: add `collection: <table>`",
    ),
    # --- providers
    case(
        "unknown-provider",
        BASE.replace("provider: pgvector", "provider: pgvectr"),
        "unknown provider 'pgvectr' in /source (did you mean 'pgvector'?)",
        "s.yaml:4:3: /source/provider",
        "registered providers: ",  # every registered store, sorted (others join the list)
    ),
    case(
        "empty-provider",
        BASE.replace("provider: jsonl", "provider: ''"),
        "/target/provider must not be empty",
        "s.yaml:8:3: /target/provider",
        "e.g. `provider: pgvector`",
    ),
    case(
        "pgvector-dsn-and-embedded",
        BASE.replace('"${env:SOURCE_DSN}"}', '"${env:SOURCE_DSN}", embedded: .pg}'),
        "pgvector connection in /source takes exactly one of 'dsn' or 'embedded', not both",
        "s.yaml:5:42: /source/connection/embedded",
        "keep one",
    ),
    case(
        "pgvector-neither",
        BASE.replace('{dsn: "${env:SOURCE_DSN}"}', "{}"),
        "pgvector connection in /source needs one of 'dsn' or 'embedded'",
        "s.yaml:5:3: /source/connection",
        "connection: {embedded: .vecmig/pg}",
    ),
    case(
        "pgvector-path-key",
        BASE.replace('{dsn: "${env:SOURCE_DSN}"}', "{path: x.db}"),
        "'path' is not a pgvector connection key",
        "s.yaml:5:16: /source/connection/path",
        "dsn",
    ),
    case(
        "files-without-path",
        BASE.replace("{path: out.jsonl}", "{}"),
        "jsonl connection in /target needs 'path'",
        "s.yaml:9:3: /target/connection",
        "connection: {path: data.jsonl}",
    ),
    case(
        "files-with-dsn",
        BASE.replace("{path: out.jsonl}", "{path: out.jsonl, dsn: x}"),
        "'dsn' is not a jsonl connection key",
        "s.yaml:9:33: /target/connection/dsn",
        "{path: data.jsonl}",
    ),
    case(
        "unknown-connection-key",
        BASE.replace("{path: out.jsonl}", "{pth: out.jsonl}"),
        "unknown key 'pth' in /target/connection (did you mean 'path'?)",
        "s.yaml:9:16: /target/connection/pth",
        "allowed keys in /target/connection: metric, path",
    ),
    # --- environment
    case(
        "unset-env",
        BASE.replace("SOURCE_DSN", "MISSING_DSN"),
        "environment variable 'MISSING_DSN' is not set (used at /source/connection/dsn)",
        "s.yaml:5:16: /source/connection/dsn",
        "export MISSING_DSN=...",
    ),
    case(
        "unset-env-inside-string",
        BASE.replace('"${env:SOURCE_DSN}"', '"postgresql://u:${env:PGPASS}@h/db"'),
        "environment variable 'PGPASS' is not set",
        "s.yaml:5:16: /source/connection/dsn",
        "export PGPASS",
    ),
    case(
        "placeholder-without-env",
        BASE.replace("${env:SOURCE_DSN}", "${SOURCE_DSN}"),
        "unsupported placeholder '${SOURCE_DSN}' in /source/connection/dsn",
        "s.yaml:5:16: /source/connection/dsn",
        "write ${env:NAME}",
    ),
    case(
        "placeholder-unclosed",
        BASE.replace("${env:SOURCE_DSN}", "${env:SOURCE_DSN"),
        "unclosed placeholder in /source/connection/dsn",
        "s.yaml:5:16: /source/connection/dsn",
        "closing brace",
    ),
    # --- YAML syntax
    case(
        "yaml-tab",
        "version: 1\nsource:\n\tprovider: pgvector\n",
        "YAML syntax error: found character '\\t' that cannot start any token",
        "s.yaml:3:1",
        "indent with spaces, not tabs",
    ),
    case(
        "yaml-unclosed-bracket",
        "version: 1\nname: demo\nsource:\n  fields: {metadata: [a, b}\n",
        "YAML syntax error: expected ',' or ']'",
        "s.yaml:4:27",
        "close the bracket opened on line 4",
    ),
    case(
        "yaml-key-over-1024-characters",
        "version: 1\nmapping: {metadata: {rename: {" + "k" * 1100 + ": y}}}\n",
        "YAML syntax error: expected ',' or '}', but got ':'",
        "s.yaml:2:1131",
        "a key longer than 1024 characters must be written as an explicit key",
    ),
    case(
        "yaml-bad-indentation",
        BASE.replace("  collection: docs", "   collection: docs"),
        "YAML syntax error: this line's indentation does not match the lines above it",
        "s.yaml:6:4",
        "check the indentation",
    ),
    case(
        "yaml-dedented-key",
        "version: 1\n  name: demo\n",
        "mapping values are not allowed here",
        "s.yaml:2:7",
        "check the indentation",
    ),
    case(
        "yaml-unclosed-quote",
        'version: 1\nname: "demo\n',
        "YAML syntax error: found unexpected end of stream (while scanning a quoted scalar on line 2)",
        "s.yaml:3:1",
        "close the quote",
    ),
    case(
        "yaml-two-documents",
        BASE + "---\nversion: 1\n",
        "expected a single document in the stream",
        "s.yaml:10:1",
        "remove the extra '---'",
    ),
    case(
        "yaml-tag",
        BASE + "strategy: !env STRATEGY\n",
        "could not determine a constructor for the tag '!env'",
        "s.yaml:10:11",
        "read values from the environment with ${env:NAME}",
    ),
    case(
        "yaml-boolean-key",
        BASE + "on: push\n",
        "key 'on' at the top level is read as true/false, not a name",
        "s.yaml:10:1: /",
        "quote it",
    ),
    case(
        "duplicate-key",
        BASE + "name: again\n",
        "duplicate key 'name' at the top level",
        "s.yaml:10:1: /name",
        "already set on line 2; keep one of them",
    ),
    case(
        "duplicate-nested-key",
        BASE.replace("  collection: docs\n", "  collection: docs\n  collection: d2\n"),
        "duplicate key 'collection' in /source",
        "s.yaml:7:3: /source/collection",
        "already set on line 6",
    ),
    case(
        "recursive-alias",
        BASE + "mapping: &m {metadata: *m}\n",
        "recursive alias at /mapping/metadata",
        "s.yaml:10:14: /mapping/metadata",
        "must not contain itself",
    ),
    # --- the document itself
    case(
        "not-a-mapping",
        "- version: 1\n- name: demo\n",
        "the spec must be a mapping of keys (version, name, source, target, ...), got a list",
        "s.yaml:1:1: /",
        "start the file with `version: 1`",
    ),
    case("scalar-document", "just some text\n", "got string 'just some text'", "s.yaml:1:1: /", "`version: 1`"),
    case("empty-file", "", "spec file is empty", "s.yaml:1:1: /", "start with `version: 1`"),
    case("comments-only", "# TODO: write the spec\n\n", "spec file is empty", "s.yaml:1:1: /", "`version: 1`"),
    # --- identifiers
    case(
        "identifier-injection",
        BASE.replace("collection: docs", "collection: 'docs; drop table x'"),
        "'docs; drop table x' is not a plain name: use letters, digits and _",
        "s.yaml:6:3: /source/collection",
        "pgvector table and column names must be plain identifiers",
    ),
    case(
        "identifier-quoted",
        BASE.replace("collection: docs", "collection: '\"weird name\"'"),
        "'\"weird name\"' is not a plain name",
        "s.yaml:6:3: /source/collection",
        "plain identifiers",
    ),
    case(
        "identifier-alias",
        BASE + "  alias: docs live\n",
        "'docs live' is not a plain name",
        "s.yaml:10:3: /target/alias",
        "pick a plain name such as docs_live",
    ),
    case(
        "identifier-field",
        BASE.replace(
            "  collection: docs\n", "  collection: docs\n  fields: {vector: emb, metadata: [title, page-count]}\n"
        ),
        "'page-count' is not a plain name",
        "s.yaml:7:43: /source/fields/metadata/1",
        "plain identifiers",
    ),
    case(
        "identifier-name",
        BASE.replace("name: demo", "name: Docs Upgrade"),
        "'Docs Upgrade' is not a valid migration name: use lowercase letters, digits, - and _",
        "s.yaml:2:1: /name",
        "the name keys the state store",
    ),
    case(
        "identifier-from-env",
        BASE.replace("collection: docs", 'collection: "${env:TABLE_SECRET}"'),
        "'${env:TABLE_SECRET}' (as resolved from the environment) is not a plain name",
        "s.yaml:6:3: /source/collection",
        "plain identifiers",
    ),
    # --- numbers out of range
    case(
        "range-batch-size",
        BASE + "strategy: {batch_size: 200000}\n",
        "/strategy/batch_size must be at most 100000, got integer 200000",
        "s.yaml:10:12: /strategy/batch_size",
        "use a whole number from 1 to 100000",
    ),
    case(
        "range-concurrency",
        BASE + "strategy:\n  concurrency: 0\n",
        "/strategy/concurrency must be at least 1, got integer 0",
        "s.yaml:11:3: /strategy/concurrency",
        "from 1 to 64",
    ),
    case(
        "range-shard-size",
        BASE + "strategy: {shard_size: 10}\n",
        "/strategy/shard_size must be at least 1000, got integer 10",
        "s.yaml:10:12: /strategy/shard_size",
        "from 1000 to 10000000",
    ),
    case(
        "range-dimension",
        BASE + "  create: {dimension: 20000}\n",
        "/target/create/dimension must be at most 16000, got integer 20000",
        "s.yaml:10:12: /target/create/dimension",
        "from 1 to 16000",
    ),
    # --- enums
    case(
        "enum-metric",
        BASE + "  create: {metric: cosin}\n",
        "/target/create/metric must be one of cosine, euclidean, dotproduct, got string 'cosin' "
        "(did you mean 'cosine'?)",
        "s.yaml:10:12: /target/create/metric",
        "write `metric: cosine`",
    ),
    case(
        "enum-strategy",
        BASE + "strategy: {type: bluegreen}\n",
        "/strategy/type must be one of big-bang, blue-green, phased, parallel-run, dual-write, cdc, "
        "got string 'bluegreen' (did you mean 'blue-green'?)",
        "s.yaml:10:12: /strategy/type",
        "write `type: blue-green`",
    ),
    case(
        "enum-index-type",
        BASE + "  create: {index: {type: hnws}}\n",
        "/target/create/index/type must be one of hnsw, ivfflat, none, got string 'hnws' (did you mean 'hnsw'?)",
        "s.yaml:10:20: /target/create/index/type",
        "write `type: hnsw`",
    ),
    case(
        "enum-no-guess",
        BASE + "  create: {metric: l2}\n",
        "must be one of cosine, euclidean, dotproduct, got string 'l2'",
        "s.yaml:10:12: /target/create/metric",
        "write `metric:` followed by one of cosine, euclidean, dotproduct",
    ),
    # --- strategies
    case(
        "strategy-phased-without-waves",
        BASE + "strategy: {type: phased}\n",
        "strategy phased needs waves: which records move in which order",
        "s.yaml:10:12: /strategy/type",
        "`waves: {by: namespace}`",
    ),
    case(
        "strategy-dual-write",
        BASE + "strategy:\n  batch_size: 10\n  type: dual-write\n",
        "strategy 'dual-write' is not implemented yet",
        "s.yaml:12:3: /strategy/type",
        "use big-bang or blue-green or cdc or phased",
    ),
    case(
        "blue-green-without-alias",
        BASE + "strategy: {type: blue-green}\n",
        "blue-green needs target.alias",
        "s.yaml:10:12: /strategy/type",
        "add `alias: <live name>` under target",
    ),
    case(
        "decommission-big-bang",
        BASE + "strategy: {decommission: true}\n",
        "strategy.decommission applies only to blue-green, not big-bang",
        "s.yaml:10:12: /strategy/decommission",
        "use `type: blue-green`",
    ),
    # --- state
    case(
        "state-path-and-url",
        BASE + "state: {path: a.db, url: 'postgresql://h/s'}\n",
        "state takes exactly one of 'path' or 'url', not both",
        "s.yaml:10:1: /state",
        "`path:` for a local",
    ),
    case(
        "state-empty",
        BASE + "state: {}\n",
        "state needs one of 'path' or 'url'",
        "s.yaml:10:1: /state",
        "`url:` for a shared PostgreSQL",
    ),
    case(
        "state-typo-beats-count",
        BASE + "state: {path: a.db, ulr: 'postgresql://h/s'}\n",
        "unknown key 'ulr' in /state (did you mean 'url'?)",
        "s.yaml:10:21: /state/ulr",
        "path, url",
    ),
    # --- cross-key rules
    case(
        "same-collection",
        BASE.replace(
            "provider: jsonl\n  connection: {path: out.jsonl}",
            'provider: pgvector\n  connection: {dsn: "${env:SOURCE_DSN}"}\n  collection: docs',
        ),
        "source and target are the same collection 'docs' on the same connection",
        "s.yaml:7:1: /target",
        "point the target at a new collection",
    ),
    case(
        "same-file",
        BASE.replace(
            'provider: pgvector\n  connection: {dsn: "${env:SOURCE_DSN}"}\n  collection: docs',
            "provider: jsonl\n  connection: {path: ./out.jsonl}",
        ),
        "source and target are the same file 'out.jsonl'",
        "s.yaml:6:1: /target",
        "cannot copy a collection",
    ),
    case(
        "duplicate-metadata-field",
        BASE.replace("  collection: docs\n", "  collection: docs\n  fields: {metadata: [a, b, a]}\n"),
        "/source/fields/metadata lists 'a' more than once",
        "s.yaml:7:29: /source/fields/metadata/2",
        "remove the repeat",
    ),
    case(
        "field-clash-with-default",
        BASE.replace("  collection: docs\n", "  collection: docs\n  fields: {text: id}\n"),
        "/source/fields/text names column 'id', which is already the id column",
        "s.yaml:7:12: /source/fields/text",
        "each need their own column",
    ),
    case(
        "alias-equals-collection",
        BASE.replace(
            "provider: jsonl\n  connection: {path: out.jsonl}",
            "provider: pgvector\n  connection: {embedded: .pg}\n  collection: v2\n  alias: v2",
        ),
        "target.alias must differ from target.collection",
        "s.yaml:11:3: /target/alias",
        "stable name",
    ),
]


@pytest.mark.parametrize(("text", "message", "where", "hint"), BAD)
def test_malformed_spec_is_reported_with_what_where_and_how(text: str, message: str, where: str, hint: str) -> None:
    err = fails(text)
    assert message in err.message
    assert err.where == where
    assert err.hint is not None and hint in err.hint
    line = err.one_line()
    assert "\n" not in line and line.startswith(where) and message in line


@pytest.mark.parametrize(("text", "message", "where", "hint"), BAD)
def test_no_error_reveals_a_secret(text: str, message: str, where: str, hint: str) -> None:
    err = fails(text)
    for shown in (err.one_line(), str(err), repr(err.args), err.where or "", err.hint or ""):
        assert SECRET not in shown


def test_at_least_thirty_malformed_cases() -> None:
    assert len(BAD) >= 30


# ----------------------------------------------------------------------------- errors: specifics


def test_secret_never_in_errors_raised_after_resolution() -> None:
    """The errors raised once values are resolved quote the spec as written, never the value."""
    same = BASE.replace(
        "provider: jsonl\n  connection: {path: out.jsonl}",
        'provider: pgvector\n  connection: {dsn: "${env:SOURCE_DSN}"}\n  collection: docs',
    )
    from_env = BASE + '  create: {metric: "${env:TABLE_SECRET}"}\n'
    for text in (same, from_env, BASE.replace("collection: docs", "collection: ${env:TABLE_SECRET}")):
        err = fails(text)
        assert SECRET not in err.one_line()
        assert "${env:" in err.one_line() or "same collection" in err.message


def test_earliest_problem_wins_over_unset_variable_later() -> None:
    text = BASE.replace("name: demo", "nme: demo")  # line 2; SOURCE_DSN is unset too (line 5)
    err = fails(text, env={})
    assert err.where == "s.yaml:2:1: /nme"
    assert "did you mean 'name'" in err.message


def test_unset_variable_reported_when_it_is_the_only_problem() -> None:
    err = fails(BASE, env={})
    assert err.message.startswith("environment variable 'SOURCE_DSN' is not set")


def test_empty_variable_counts_as_set_but_is_not_a_secret() -> None:
    text = BASE.replace(
        "provider: jsonl\n  connection: {path: out.jsonl}",
        'provider: jsonl\n  connection: {path: "out${env:SUFFIX}.jsonl"}',
    )
    spec = load(text, env={**ENV, "SUFFIX": ""})
    assert spec.target.connection == {"path": "out.jsonl"}
    assert "" not in spec.secrets


def test_spec_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(missing, env=ENV)
    assert info.value.message == f"spec file not found: {missing}"
    assert info.value.where == str(missing)
    assert info.value.hint and "check the path" in info.value.hint


def test_spec_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path, env=ENV)


def test_spec_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: d\xe9mo\n".encode("latin-1"))
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(path, env=ENV)


def test_load_public_errors_name_the_file_and_pointer() -> None:
    public = load(BASE).public
    public["strategy"] = {"batch_size": "many"}
    with pytest.raises(SpecError) as info:
        load_public(public, "plan.json", Path("/tmp"), env=ENV)
    assert info.value.where == "plan.json:1:1: /strategy/batch_size"


# ----------------------------------------------------------------------------- good specs

FULL = """\
version: 1
name: docs-upgrade
state: {path: state/docs.db}
source:
  provider: pgvector
  connection: {dsn: "postgresql://app:${env:PGPASS}@db/prod"}
  collection: docs
  fields: {id: doc_id, vector: emb, text: body, metadata: [title, lang]}
target:
  provider: pgvector
  connection: {embedded: .vecmig/pg}
  collection: docs_v2
  alias: docs_live
  fields: {metadata: meta}
  create:
    dimension: 384
    metric: dotproduct
    id_type: text
    index: {type: ivfflat, lists: 50}
mapping:
  metadata: {rename: {title: headline}, drop: [lang]}
strategy: {type: blue-green, batch_size: 500, concurrency: 8, shard_size: 20000, decommission: true}
validate:
  completeness: {checksums: true}
"""


def test_full_spec_loads_into_dataclasses() -> None:
    spec = load(FULL, env={"PGPASS": SECRET})
    assert (spec.version, spec.name) == (1, "docs-upgrade")
    src, tgt = spec.source, spec.target
    assert src.provider == "pgvector" and src.collection == "docs" and src.namespace is None
    assert src.connection == {"dsn": f"postgresql://app:{SECRET}@db/prod"}
    assert src.fields == Fields(id="doc_id", vector="emb", text="body", metadata=("title", "lang"))
    assert src.create is None and src.alias is None and src.pointer == "/source"
    assert tgt.connection == {"embedded": ".vecmig/pg"}  # relative paths stay as written
    assert tgt.base_dir == Path("/tmp/specs") and tgt.path(".vecmig/pg") == Path("/tmp/specs/.vecmig/pg")
    assert tgt.fields == Fields(metadata="meta")
    assert tgt.alias == "docs_live" and tgt.pointer == "/target"
    assert tgt.create == CreateSpec(
        dimension=384, metric="dotproduct", id_type="text", index=IndexSpec(type="ivfflat", lists=50)
    )
    assert spec.mapping == MappingSpec(rename=(("title", "headline"),), drop=("lang",))
    assert spec.strategy == StrategySpec(
        type="blue-green", batch_size=500, concurrency=8, shard_size=20000, decommission=True
    )
    assert spec.validate == ValidateSpec(completeness=True, checksums=True)
    assert spec.state_path == Path("/tmp/specs/state/docs.db") and spec.state_url is None


def test_minimal_spec_gets_defaults() -> None:
    spec = load(BASE)
    assert spec.strategy == StrategySpec()
    assert spec.mapping == MappingSpec()
    assert spec.validate == ValidateSpec(completeness=True, checksums=True)
    assert spec.source.fields == Fields()
    assert spec.target.create is None and spec.target.collection is None
    assert spec.state_path == Path("/tmp/specs/.vecmig/demo.db")
    assert "strategy" not in spec.public and "state" not in spec.public  # defaults never enter public


def test_completeness_false_disables_checksums() -> None:
    spec = load(BASE + "validate: {completeness: false}\n")
    assert spec.validate == ValidateSpec(completeness=False, checksums=False)


def test_state_url_is_resolved_and_secret() -> None:
    spec = load(
        BASE + 'state: {url: "postgresql://vecmig:${env:STATE_PW}@db/state"}\n', env={**ENV, "STATE_PW": "pw-123456"}
    )
    assert spec.state_url == "postgresql://vecmig:pw-123456@db/state"
    assert spec.state_path is None
    assert "pw-123456" in spec.secrets


def test_absolute_state_path_kept(tmp_path: Path) -> None:
    spec = load(BASE + f"state: {{path: {tmp_path}/s.db}}\n")
    assert spec.state_path == tmp_path / "s.db"


def test_load_spec_file_uses_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plans").mkdir()
    path = tmp_path / "plans" / "m.yaml"
    path.write_text(BASE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCE_DSN", "postgresql://from-os-environ/db")
    spec = load_spec("plans/m.yaml")  # env defaults to os.environ
    assert spec.source.connection["dsn"] == "postgresql://from-os-environ/db"
    assert spec.target.base_dir == tmp_path / "plans"
    assert spec.state_path == tmp_path / "plans" / ".vecmig" / "demo.db"
    assert spec.where("/target/provider") == "plans/m.yaml:8:3: /target/provider"


def test_positions_point_at_keys_and_fall_back_to_parents() -> None:
    spec = load(FULL, env={"PGPASS": "x"})
    assert spec.where("/target/create/index/lists") == "s.yaml:19:28: /target/create/index/lists"
    assert spec.where("/source/fields/metadata/1") == "s.yaml:8:67: /source/fields/metadata/1"
    assert spec.where("/target/create/index/m") == "s.yaml:19:5: /target/create/index/m"  # not written
    assert spec.where("") == "s.yaml:1:1: /"


def test_merge_keys_and_anchors_are_supported() -> None:
    text = """\
version: 1
name: anchors
source: &store
  provider: jsonl
  connection: {path: in.jsonl}
target:
  <<: *store
  connection: {path: out.jsonl}
"""
    spec = load(text)
    assert spec.target.provider == "jsonl" and spec.target.connection == {"path": "out.jsonl"}
    assert spec.where("/target/connection") == "s.yaml:8:3: /target/connection"


def test_float_integers_become_ints() -> None:
    spec = load(BASE + "strategy: {batch_size: 500.0}\n")
    assert spec.strategy.batch_size == 500 and isinstance(spec.strategy.batch_size, int)


# ----------------------------------------------------------------------------- secrets and the hash


def test_secrets_collected_but_public_keeps_placeholders() -> None:
    spec = load(FULL, env={"PGPASS": SECRET})
    assert SECRET in spec.secrets
    assert f"postgresql://app:{SECRET}@db/prod" in spec.secrets
    dumped = json.dumps(spec.public)
    assert SECRET not in dumped
    assert spec.public["source"]["connection"]["dsn"] == "postgresql://app:${env:PGPASS}@db/prod"


def test_secrets_are_the_values_of_secret_keys_written_or_resolved() -> None:
    # A DSN is a secret wherever it was written (a literal one may carry a password too);
    # an environment value at a non-secret key (a path) is not: it is shown as written.
    assert load(BASE.replace('"${env:SOURCE_DSN}"', "postgresql://plain/db")).secrets == frozenset(
        {"postgresql://plain/db"})
    spec = load(BASE.replace("out.jsonl", "\"${env:OUT_DIR}/out.jsonl\""),
                env={"SOURCE_DSN": "postgresql://u:pw@h/db", "OUT_DIR": "/data/exports"})
    assert spec.secrets == frozenset({"postgresql://u:pw@h/db"})
    assert dict(spec.shown)["/data/exports/out.jsonl"] == "${env:OUT_DIR}/out.jsonl"


def test_spec_hash_stable_across_env_changes() -> None:
    one = load(FULL, env={"PGPASS": "first-password"})
    two = load(FULL, env={"PGPASS": "second-password"})
    assert one.source.connection != two.source.connection
    assert one.spec_hash == two.spec_hash


def test_spec_hash_changes_when_the_file_changes() -> None:
    assert load(BASE).spec_hash != load(BASE.replace("out.jsonl", "out2.jsonl")).spec_hash


def test_load_public_round_trip_resolves_env_again() -> None:
    spec = load(FULL, env={"PGPASS": "first-password"})
    again = load_public(
        json.loads(json.dumps(spec.public)), "plan.json", Path("/tmp/specs"), env={"PGPASS": "rotated-password"}
    )
    assert again.spec_hash == spec.spec_hash
    assert again.source.connection == {"dsn": "postgresql://app:rotated-password@db/prod"}
    assert "rotated-password" in again.secrets and "first-password" not in again.secrets
    assert (again.target, again.strategy, again.mapping) == (spec.target, spec.strategy, spec.mapping)
    assert again.where("/target/alias") == "plan.json:1:1: /target/alias"


def test_load_public_does_not_mutate_its_input() -> None:
    public = load(BASE).public
    snapshot = json.dumps(public, sort_keys=True)
    load_public(public, "plan.json", Path("/tmp"), env=ENV)
    assert json.dumps(public, sort_keys=True) == snapshot


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(load_schema("spec.v1"))


@pytest.mark.parametrize(("dsn", "what"), [
    ("postgresql://app:hunter2@db/prod", "a password in the URL"),
    ("postgresql://app@db/prod?sslmode=require&password=hunter2", "a password in the URL"),
    ("host=db user=app password=hunter2 dbname=prod", "a password"),
])
def test_a_credential_written_into_the_spec_is_refused(dsn: str, what: str) -> None:
    """Plans and the state keep the spec as written: a literal credential would be stored."""
    err = fails(BASE.replace('"${env:SOURCE_DSN}"', f'"{dsn}"'))
    assert f"/source/connection/dsn holds a credential written in the spec ({what})" in err.message
    assert "hunter2" not in err.one_line() and "${env:NAME}" in (err.hint or "")


def test_a_literal_api_key_is_refused_and_placeholders_pass() -> None:
    text = BASE.replace("provider: jsonl\n  connection: {path: out.jsonl}",
                        'provider: pinecone\n  connection: {api_key: "pcsk_literal"}\n  collection: docs')
    assert "holds a credential written in the spec (the value itself)" in fails(text).message
    for dsn in ("postgresql://app@db/prod", "postgresql://app:${env:PW}@db/prod"):
        assert load(BASE.replace('"${env:SOURCE_DSN}"', f'"{dsn}"'), env={**ENV, "PW": "pw"}).source.provider


def test_a_store_that_is_not_a_mapping_is_a_schema_error_not_a_crash() -> None:
    err = fails(BASE.replace('source:\n  provider: pgvector\n  connection: {dsn: "${env:SOURCE_DSN}"}\n'
                             '  collection: docs\n', "source: [pgvector]\n"))
    assert "/source" in err.message and err.where.startswith("s.yaml:")
