"""A local OpenAI-compatible embeddings server for the tests (``/v1/embeddings``).

It serves a real local model (``vecmig.embed``'s local backend: the same weights the local path
uses) in OpenAI's response shape, with OpenAI's errors for bad input and injectable faults (429
with Retry-After, 500). It counts every text it embeds, so a test can prove nothing was paid for
twice. Start it in-process with :class:`OpenAILocal`, or standalone: ``python -m tests.openai_local``.
"""

from tests.openai_local.server import Faults, OpenAILocal, Stats

__all__ = ["Faults", "OpenAILocal", "Stats"]
