"""Diagnosis aid for the chaos suite (`CHAOS_FAUST_DIAGNOSTICS=1`), never used in production.

Loaded into worker processes through PYTHONPATH, it surfaces at WARNING level two
things Faust's consumer does silently (faust/transport/consumer.py, drain loop):
recording an offset gap, whose offsets then count as acked for commits, and
dropping a fetched message whose offset is below the partition's read offset.
Around rebalances both make a worker skip input (faust-streaming issues #221, #606).
"""

import logging

try:
    import faust.transport.consumer as _consumer
    from mode.utils.logging import CompositeLogger as _CompositeLogger

    _log = logging.getLogger("crm.faust_diagnostics")
    _add_gap = _consumer.Consumer._add_gap

    async def _logged_gap(self, tp, offset_from, offset_to):  # type: ignore[no-untyped-def]
        _log.warning("gap recorded (counts as acked) %s %s-%s", tp, offset_from, offset_to)
        await _add_gap(self, tp, offset_from, offset_to)

    _consumer.Consumer._add_gap = _logged_gap
    _dev = _CompositeLogger.dev

    def _logged_dev(self, message, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(message, str) and message.startswith("DROPPED MESSAGE"):
            _log.warning("message dropped as already read: offset %s tp %s read offset %s", *args)
        elif isinstance(message, str) and message.startswith("STALE MESSAGE"):
            _log.warning("stale message skipped: %s offset %s", *args)
        return _dev(self, message, *args, **kwargs)

    _CompositeLogger.dev = _logged_dev
except Exception as exc:  # a diagnosis aid must never stop a worker
    logging.getLogger("crm.faust_diagnostics").warning("not installed: %r", exc)

# Every 15 s, what aiokafka's fetcher waits on: the nodes it thinks have a request in
# flight (no fetch is sent to them meanwhile) and the stack of each pending task.
try:
    import threading as _threading
    import time as _time

    from aiokafka.consumer import fetcher as _fetcher

    _fetchers: list = []
    _init = _fetcher.Fetcher.__init__

    def _registering_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        _init(self, *args, **kwargs)
        _fetchers.append(self)

    _fetcher.Fetcher.__init__ = _registering_init

    _faust_consumers: list = []
    _cinit = _consumer.Consumer.__init__

    def _registering_cinit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        _cinit(self, *args, **kwargs)
        _faust_consumers.append(self)

    _consumer.Consumer.__init__ = _registering_cinit

    def _watch() -> None:
        while True:
            _time.sleep(15)
            for c in list(_faust_consumers):
                try:
                    _log.warning(
                        "faust consumer: flow_active %s, can_resume %s, suspend %s, "
                        "paused %d, active %s, buffered %d, rebalancing %s",
                        c.flow_active,
                        c.can_resume_flow.is_set(),
                        c.suspend_flow.is_set(),
                        len(c._paused_partitions),
                        None if c._active_partitions is None else len(c._active_partitions),
                        len(c._buffered_partitions),
                        c.app.rebalancing,
                    )
                except Exception as exc:  # diagnosis only
                    _log.warning("faust consumer state unavailable: %r", exc)
            for f in list(_fetchers):
                pending = [t for t in list(f._pending_tasks) if not t.done()]
                stacks = []
                for task in pending:
                    frames = task.get_stack(limit=3)
                    stacks.append(" < ".join(f"{fr.f_code.co_name}:{fr.f_lineno}" for fr in frames))
                states = []
                try:
                    assignment = f._subscriptions.subscription.assignment
                    for tp in sorted(assignment.tps, key=lambda t: (t.topic, t.partition)):
                        if "changelog" in tp.topic:
                            continue
                        st = assignment.state_value(tp)
                        states.append(
                            f"{tp.topic.rsplit('.', 1)[-1]}/{tp.partition}"
                            f":{'P' if st.paused else ''}"
                            f"{st._position if st.has_valid_position else 'nopos'}"
                            f"/hw{st.highwater}"
                        )
                except Exception as exc:  # diagnosis only
                    states.append(f"? {exc!r}")
                subs = f._subscriptions
                sub = subs.subscription
                _log.warning(
                    "aiokafka fetcher: in flight %s, pending %s, records for %d partitions; "
                    "reassignment in progress %s, assignment waiters %d, subscribed %s; %s",
                    sorted(f._in_flight),
                    stacks,
                    len(f._records),
                    subs.reassignment_in_progress,
                    len(subs._assignment_waiters),
                    None if sub is None else sorted(sub.topics),
                    " ".join(states),
                )

    _threading.Thread(target=_watch, daemon=True, name="fetcher-watch").start()
except Exception as exc:  # a diagnosis aid must never stop a worker
    logging.getLogger("crm.faust_diagnostics").warning("fetcher watch not installed: %r", exc)

# Faust's producer buffer (where table changelog records wait) gives up a flush after
# 0.1 s without progress and refuses to flush once stopping: log what it leaves behind.
try:
    import faust.transport.producer as _producer

    _flush_atmost = _producer.ProducerBuffer.flush_atmost

    async def _logged_flush_atmost(self, max_messages):  # type: ignore[no-untyped-def]
        try:
            flushed = await _flush_atmost(self, max_messages)
        except RuntimeError:
            _log.warning("producer buffer flush refused (stopping): %d messages dropped", self.size)
            raise
        if max_messages is None and self.size:
            _log.warning("producer buffer flush gave up with %d messages pending", self.size)
        return flushed

    _producer.ProducerBuffer.flush_atmost = _logged_flush_atmost
except Exception as exc:  # a diagnosis aid must never stop a worker
    logging.getLogger("crm.faust_diagnostics").warning("buffer watch not installed: %r", exc)

# Where each stream partition's position comes from: the committed offsets a seek
# reads, each seek, each batch taken from aiokafka (first-last offset per partition,
# and those of partitions not active then, which Faust's getmany drops) and each commit.
try:
    from streams.shell import rebalance_safe_consumer as _safe

    def _stream(tp) -> bool:  # type: ignore[no-untyped-def]
        return "changelog" not in tp.topic

    def _short(tp) -> str:  # type: ignore[no-untyped-def]
        return f"{tp.topic.rsplit('.', 1)[-1]}/{tp.partition}"

    _perform_seek = _consumer.Consumer.perform_seek

    async def _logged_perform_seek(self):  # type: ignore[no-untyped-def]
        await _perform_seek(self)
        _log.warning(
            "perform_seek gen %s: read offsets %s",
            self.app.consumer_generation_id,
            " ".join(
                f"{_short(tp)}={o}" for tp, o in sorted(self._read_offset.items()) if _stream(tp)
            ),
        )

    _consumer.Consumer.perform_seek = _logged_perform_seek

    _note_seek = _safe.RebalanceSafeConsumerThread._note_seek

    def _logged_note_seek(self, tp):  # type: ignore[no-untyped-def]
        _note_seek(self, tp)
        try:
            subscription = self._ensure_consumer()._subscription.subscription
            position = subscription.assignment.state_value(tp).position
        except Exception:  # diagnosis only
            position = "?"
        _log.warning("seek %s to %s (seeks %d)", _short(tp), position, self.seeks)

    _safe.RebalanceSafeConsumerThread._note_seek = _logged_note_seek

    _wait_next = _consumer.Consumer._wait_next_records

    async def _logged_wait_next(self, timeout):  # type: ignore[no-untyped-def]
        records, active = await _wait_next(self, timeout)
        if records:
            parts = []
            for tp, rs in records.items():
                if not _stream(tp) or not rs:
                    continue
                inactive = (
                    active is not None and tp not in active and tp not in self._buffered_partitions
                )
                flag = " INACTIVE" if inactive else ""
                parts.append(f"{_short(tp)}:{rs[0].offset}-{rs[-1].offset}{flag}")
            if parts:
                _log.warning(
                    "batch gen %s seeks %s: %s",
                    self.app.consumer_generation_id,
                    getattr(self, "_batch_seeks", "?"),
                    " ".join(parts),
                )
        return records, active

    _consumer.Consumer._wait_next_records = _logged_wait_next

    _commit = _consumer.Consumer._commit_offsets

    async def _logged_commit(self, offsets, *args, **kwargs):  # type: ignore[no-untyped-def]
        ok = await _commit(self, offsets, *args, **kwargs)
        _log.warning(
            "commit gen %s ok %s: %s",
            self.app.consumer_generation_id,
            ok,
            " ".join(f"{_short(tp)}={o}" for tp, o in sorted(offsets.items()) if _stream(tp)),
        )
        return ok

    _consumer.Consumer._commit_offsets = _logged_commit
except Exception as exc:  # a diagnosis aid must never stop a worker
    logging.getLogger("crm.faust_diagnostics").warning("seek watch not installed: %r", exc)
