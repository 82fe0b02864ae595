"""The peer: Quix Streams counting events per key in its state store.

Runs in its own virtualenv (bench/.venv-peer, made by `make bench`), never in
the project's: Quix Streams is a point of comparison, not a dependency.

    bench/.venv-peer/bin/python bench/peer_quix.py --bootstrap HOST:PORT --topic T \
        --events N --seconds S --result FILE --group G --state-dir DIR

A stateful `update`: per message, read the key's count from the state store
(RocksDB, changelogged) and write it back + 1, i.e. the same one-state-write
per event as the Faust table baseline. Values are decoded as JSON by Quix.
Timed from the first message processed to the N-th.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from child import write_result  # bench/ is sys.path[0] when run as a script
from quixstreams import Application, State
from rate_window import RateWindow


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()
    result = Path(args.result)

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
        # librdkafka's 45 s session makes the embedded broker hold the first join for
        # ~22 s (it waits session_timeout / 2): start-up only, but minutes over 3 runs.
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
    )
    topic = app.topic(args.topic, key_deserializer="bytes", value_deserializer="json")
    window = RateWindow(args.events, args.seconds)

    def count(value: Any, state: State) -> None:
        state.set("count", state.get("count", 0) + 1)
        measured = window.tick()
        if measured is not None:
            write_result(result, measured)

    app.dataframe(topic).update(count, stateful=True)
    app.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
