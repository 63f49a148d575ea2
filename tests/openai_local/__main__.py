"""``python -m tests.openai_local [--port N] [--model all-MiniLM-L6-v2]``: serve until Ctrl-C."""

from __future__ import annotations

import argparse
import threading

from tests.openai_local.server import DEFAULT_API_KEY, OpenAILocal
from vecmig.embed import EmbedConfig, make_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    args = parser.parse_args()
    server = OpenAILocal(make_model(EmbedConfig(model=args.model, batch_size=64)), api_key=args.api_key,
                         port=args.port).start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
