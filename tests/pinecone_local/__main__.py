"""Run the fake standalone: ``python -m tests.pinecone_local --port 0 --print-port``.

With ``--print-port`` the first stdout line is the bound ``host:port``; the
process then serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from types import FrameType

from tests.pinecone_local.faults import FaultConfig
from tests.pinecone_local.server import DEFAULT_API_KEY, PineconeLocal


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.pinecone_local")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=os.environ.get("PINECONE_LOCAL_API_KEY", DEFAULT_API_KEY))
    parser.add_argument("--ready-delay", type=float, default=0.0)
    parser.add_argument("--print-port", action="store_true", help="print host:port on stdout")
    parser.add_argument("--null-metadata", choices=("strip", "reject"), default="strip")
    parser.add_argument("--oversize-status", type=int, choices=(400, 413), default=400)
    parser.add_argument("--faults-json", help="a FaultConfig as JSON; overrides the flags below")
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-503", type=float, default=0.0)
    parser.add_argument("--rate-drop", type=float, default=0.0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.faults_json:
        faults = FaultConfig.from_dict(json.loads(args.faults_json))
    else:
        faults = FaultConfig(
            rate_429=args.rate_429,
            rate_503=args.rate_503,
            rate_drop=args.rate_drop,
            latency_ms=args.latency_ms,
            retry_after=args.retry_after,
            seed=args.seed,
        )
    server = PineconeLocal(
        args.api_key,
        host=args.host,
        port=args.port,
        ready_delay=args.ready_delay,
        faults=faults,
        null_metadata=args.null_metadata,
        oversize_status=args.oversize_status,
    ).start()
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if args.print_port:
        print(server.host, flush=True)
    else:
        print(f"pinecone-local listening on {server.url}", file=sys.stderr, flush=True)
    try:
        # A timed wait keeps the main thread responsive to signals.
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
