"""Run the local Qdrant server standalone: ``python -m tests.qdrant_local --port 0``.

The first stdout line is the server's URL; it then serves until SIGTERM or SIGINT. The API
key, if any, comes from ``QDRANT_LOCAL_API_KEY`` (never from the command line, where ``ps``
would show it).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from tests.qdrant_local.server import QdrantLocal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.qdrant_local")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = QdrantLocal(os.environ.get("QDRANT_LOCAL_API_KEY"), host=args.host, port=args.port).start()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(server.url, flush=True)
    try:
        while not stop.wait(0.5):  # a timed wait keeps the main thread responsive to signals
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
