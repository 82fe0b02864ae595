"""A design probe, not a worker: the worker's core in a plain aiokafka loop, without Faust.

Why it is in the bench: the throughput target (half the peer's rate in one process)
asks how much of a worker's time is the framework's and how much is the work itself.
This loop keeps what any design has to do per event, with the worker's own code and
settings (`Settings()`: default playbook, state limits, and the send horizon the
throughput runs give the workers, `pipeline.REPLAY_ENV`):
- consume the bench topic (aiokafka `getmany`, as the limit stage) and validate each
  event (`decode_event`);
- the engine's step and the contact policy on the customer's in-memory state;
- publish every decision and every sent action (aiokafka producer, linger 5 ms, the
  same JSON);
- every 0.2 s (`CRM_CHANGELOG_FLUSH_INTERVAL_SECONDS`), write the customers and contact
  histories that changed, with `--state whole`: each state encoded whole by the
  worker's codec and produced to a changelog topic, as the worker's flush does.
  `--state none` keeps them in memory only: the bound for a design whose state
  writes cost nothing.
What it leaves out is what a design without Faust's per-message path would not pay,
and also what a worker must do that this does not: committing offsets and acking
input after the flush, recovery, rebalances, dead letters (the bench history has no
invalid event), the due-time index and timer scanning, metrics. So its rate is an
upper bound for such a design, not a worker's figure.

Timed like the other contenders, from the first event handled to the N-th; writes
`{"rate": ...}` to `--result` and waits to be stopped (`child.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from child import write_result
from limit import topic_reader
from new_topics import create_topics
from pydantic import BaseModel
from rate_window import RateWindow

from schemas.state import CustomerState
from schemas.step import OrchestratorState
from streams.core.decoding import Rejection, decode_event
from streams.core.orchestrator import Orchestrated, event_steps
from streams.settings import Settings
from streams.shell.app import worker_core
from streams.shell.state_codec import encode_state


class Outputs:
    """Decisions, actions and changelog records, produced as the worker writes them."""

    def __init__(self, producer: AIOKafkaProducer, tag: str) -> None:
        self.producer = producer
        self.tag = tag

    async def publish(self, key: bytes, partition: int, done: Orchestrated) -> None:
        outputs: tuple[tuple[str, list[Any]], ...] = (
            ("decisions", done.decisions),
            ("actions", done.actions),
        )
        for topic, records in outputs:
            for record in records:
                await self.producer.send(
                    f"{self.tag}.{topic}",
                    key=key,
                    value=record.model_dump_json().encode(),
                    partition=partition,
                )

    async def write(self, table: str, dirty: dict[bytes, tuple[int, BaseModel]]) -> None:
        topic = f"{self.tag}.{table}-changelog"
        for key, (partition, state) in dirty.items():
            await self.producer.send(topic, key=key, value=encode_state(state), partition=partition)
        dirty.clear()


async def run(
    bootstrap: str, topic: str, window: RateWindow, state: str, tag: str, partitions: int
) -> dict[str, Any]:
    settings = Settings()
    engine, orchestrator = worker_core(settings)
    await create_topics(
        bootstrap,
        [f"{tag}.{name}" for name in ("decisions", "actions", "customers-changelog")]
        + [f"{tag}.contacts-changelog"],
        partitions,
    )
    consumer = topic_reader(bootstrap, topic, fetch_max_wait_ms=settings.fetch_max_wait_ms)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=settings.producer_linger_ms,
        max_batch_size=settings.producer_max_batch_bytes,
    )
    await consumer.start()
    await producer.start()
    outputs = Outputs(producer, tag)
    customers: dict[bytes, CustomerState] = {}
    contacts: dict[bytes, OrchestratorState] = {}
    dirty_customers: dict[bytes, tuple[int, BaseModel]] = {}
    dirty_contacts: dict[bytes, tuple[int, BaseModel]] = {}
    write = state == "whole"
    flush_every = settings.changelog_flush_interval_seconds
    limits = settings.decode_limits
    horizon_seconds = settings.send_horizon_seconds
    measured: dict[str, Any] | None = None
    flushed = time.monotonic()
    try:
        while measured is None:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            now = datetime.now(UTC)
            # As the worker's `OrchestratorAgent.horizon`: 0 disables it.
            horizon = now - timedelta(seconds=horizon_seconds) if horizon_seconds > 0 else None
            for tp, records in batches.items():
                for record in records:
                    if measured is not None:
                        break
                    measured = window.tick()
                    key: Any = record.key
                    event = decode_event(key, record.value, limits, now)
                    if isinstance(event, Rejection):
                        continue
                    step = engine.on_event(customers.get(key), event)
                    if step.duplicate:
                        continue
                    customers[key] = step.state
                    if write:
                        dirty_customers[key] = (tp.partition, step.state)
                    for message in event_steps(orchestrator, step, event.occurred_at, event.type):
                        done = orchestrator.on_step(contacts.get(key), message, horizon)
                        contacts[key] = done.state
                        if write:
                            dirty_contacts[key] = (tp.partition, done.state)
                        await outputs.publish(key, tp.partition, done)
            if write and time.monotonic() - flushed >= flush_every:
                await outputs.write("customers", dirty_customers)
                await outputs.write("contacts", dirty_contacts)
                flushed = time.monotonic()
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()
    assert measured is not None
    return measured


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--state", choices=("whole", "none"), default="whole")
    parser.add_argument("--tag", required=True)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    window = RateWindow(args.events, args.seconds)
    measured = asyncio.run(
        run(args.bootstrap, args.topic, window, args.state, args.tag, args.partitions)
    )
    write_result(args.result, measured)
    # child.py stops us once it has read the result.
    while True:
        time.sleep(60)


if __name__ == "__main__":
    raise SystemExit(main())
