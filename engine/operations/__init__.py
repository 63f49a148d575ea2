"""Operations: what each vecmig command does, apart from how it is asked for and shown.

Each takes a frozen request and a :class:`~vecmig.operations.ui.Ui` and returns a frozen
result (or raises a VecmigError); the CLI parses arguments, calls one and renders what it
returns. Nothing here imports the CLI, typer or a rich console.

One module per group, imported on its own so a command loads only what it runs:
``plan`` (validate, init, plan, show, graph), ``apply``, ``rollback``, ``state``
(force-unlock and the state inspections); ``ui`` is the protocol, ``common`` the spec and
state helpers they share.
"""
