"""Framework baseline: the smallest Faust app on the bench topic, with Faust's defaults.

    python bench/faust_baseline.py --mode bare|table --broker kafka://... --topic T \
        --events N --seconds S --result FILE --app-id ID --data-dir DIR

`bare`: an agent that decodes each value with orjson and does nothing else.
`table`: the same plus one table write per event (a per-customer counter, so
one changelog record per event). Defaults on purpose (log level, linger, no
cython, default Monitor): this is what a Faust user starts from, the ~11.5k/s
and ~3.7k/s of DESIGN.md §6. Only the group timings are shortened, because the
embedded broker holds a join for session_timeout / 2 (start-up, not throughput).
Timed from the first event handled to the N-th.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import faust
import orjson
from child import write_result  # bench/ is sys.path[0] when run as a script
from rate_window import RateWindow


class Meter:
    def __init__(self, window: RateWindow, result: Path) -> None:
        self.window = window
        self.result = result

    def tick(self) -> None:
        measured = self.window.tick()
        if measured is not None:
            write_result(self.result, measured)


def build(args: argparse.Namespace) -> faust.App:
    app = faust.App(
        args.app_id,
        broker=args.broker,
        store="memory://",
        datadir=args.data_dir,
        web_enabled=False,
        topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
    )
    topic = app.topic(
        args.topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=args.partitions,
    )
    counts: Any = None
    if args.mode == "table":
        counts = app.Table(
            "counts", default=int, partitions=args.partitions, key_type=bytes, value_type=int
        )
    meter = Meter(RateWindow(args.events, args.seconds), Path(args.result))

    @app.agent(topic)
    async def consume(stream: Any) -> None:
        async for key, value in stream.items():
            orjson.loads(value)
            if counts is not None:
                counts[key] += 1
            meter.tick()

    return app


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("bare", "table"), required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    # "WARN" is what `faust worker` passes by default (the Worker class itself has no
    # default); at this level Faust sets the root logger to DEBUG, a cost users pay.
    faust.Worker(build(args), loglevel="WARN").execute_from_commandline()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
