"""The due-time index of a worker on the RocksDB store, kept on disk.

The in-memory `TimerIndex` costs ~200 B of Python objects per customer with a timer
(the key, a heap entry, a latest-due entry): 2 GB at 10M customers before any state.
Here the index is a RocksDB database of its own, so the worker's memory no longer
grows with the timers it holds (the design of Flink's RocksDB timer service):

- `D` + partition + due time + key -> nothing: the timers in due order; what is due
  is a range read from the start of the partition's range;
- `K` + partition + key -> due time: each customer's entry, so that re-arming deletes
  the old one instead of leaving it to pile up.

Each worker process has its own (`<table>.due-index.<random id>` in the data dir;
those no process holds open are removed). It is scratch: wiped when opened, rebuilt from the table
after each recovery (as the in-memory index is), so it needs no write-ahead log and
never disagrees with the state it indexes across a crash.

Due entries are deleted as they are returned, which leaves tombstones at the start of
each partition's range until RocksDB compacts them away. So that each read does not
step over all of them, reads start at a floor: a due time no live entry is before.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import rocksdict

from streams.shell.due_retries import DueRetries
from streams.shell.timer_index import DueIndex

_OFFSET = 1 << 63  # due times before 1970 still sort first
_MB = 1024 * 1024
_BATCH = 10_000


def _us(at: float) -> bytes:
    return (round(at * 1_000_000) + _OFFSET).to_bytes(8, "big")


def _seconds(encoded: bytes) -> float:
    return (int.from_bytes(encoded, "big") - _OFFSET) / 1_000_000


def _orphaned(index: Path) -> bool:
    """No process has the index at `index` open. RocksDB holds a POSIX lock on its
    `LOCK` file while a database is open, released when its process dies, also across
    containers sharing a volume (where process ids say nothing). Not for an index this
    process has open: POSIX locks do not conflict within a process."""
    try:
        fd = os.open(index / "LOCK", os.O_RDWR)
    except OSError:
        return False  # no LOCK file: being created, or not RocksDB's; left alone
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def _prefix(kind: bytes, partition: int) -> bytes:
    return kind + partition.to_bytes(4, "big")  # Kafka's partition numbers are int32


class DiskTimerIndex(DueIndex):
    def __init__(
        self,
        path: Path,
        retry_seconds: float = 60.0,
        wall_clock: Callable[[], float] = time.monotonic,
        write_buffer_mb: int = 4,
        block_cache_mb: int = 8,
    ) -> None:
        self._path = path
        self._options = (write_buffer_mb, block_cache_mb)
        self._db: rocksdict.Rdict | None = None
        self._floor: dict[int, bytes] = {}
        """Per partition: no live due entry sorts before this encoded due time."""
        self._entries: dict[int, int] = {}
        """Per indexed partition: customers indexed (for the gauge; RocksDB cannot
        count them)."""
        self._unnoted: set[int] = set()
        """Partitions reset and not noted since: `extend` need not look for entries."""
        self._retries = DueRetries(retry_seconds, wall_clock)

    @property
    def db(self) -> rocksdict.Rdict:
        # Opened on first use: a worker that never gets a partition has no files to
        # wipe or hold locked.
        if self._db is None:
            self._remove_orphans()
            shutil.rmtree(self._path, ignore_errors=True)
            self._path.parent.mkdir(parents=True, exist_ok=True)
            write_buffer_mb, block_cache_mb = self._options
            options = rocksdict.Options(raw_mode=True)
            options.create_if_missing(True)
            options.set_write_buffer_size(write_buffer_mb * _MB)
            options.set_max_write_buffer_number(2)
            table = rocksdict.BlockBasedOptions()
            table.set_block_cache(rocksdict.Cache(block_cache_mb * _MB))
            options.set_block_based_table_factory(table)
            db = rocksdict.Rdict(str(self._path), options)
            scratch = rocksdict.WriteOptions()
            # Rebuilt after every start: nothing to replay. (A property at run time;
            # rocksdict's type stubs call it a method.)
            scratch.disable_wal = True  # type: ignore[method-assign,assignment]
            db.set_write_options(scratch)
            self._db = db
        return self._db

    def _remove_orphans(self) -> None:
        """Indexes of workers gone. Each worker process has its own (`<base>.<id>`):
        workers may share a data dir (Faust's stores are per partition), and opening
        an index wipes it."""
        base = self._path.name.rsplit(".", 1)[0]
        for sibling in self._path.parent.glob(f"{base}.*"):
            if sibling != self._path and _orphaned(sibling):
                shutil.rmtree(sibling, ignore_errors=True)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def note(self, partition: int, key: bytes, due: datetime | None) -> None:
        self._retries.noted(partition, key)
        self._unnoted.discard(partition)
        db = self.db
        entry = _prefix(b"K", partition) + key
        old = db.get(entry)
        new = _us(due.timestamp()) if due is not None else None
        if old == new:
            return
        batch = rocksdict.WriteBatch(raw_mode=True)
        if old is not None:
            batch.delete(_prefix(b"D", partition) + old + key)
        if new is None:
            batch.delete(entry)
            self._entries[partition] -= 1
        else:
            if old is None:
                self._entries[partition] = self._entries.get(partition, 0) + 1
            batch.put(_prefix(b"D", partition) + new + key, b"")
            batch.put(entry, new)
            floor = self._floor.get(partition)
            if floor is None or new < floor:
                self._floor[partition] = new
        db.write(batch)

    def reset(self, partition: int) -> None:
        self._clear(partition)
        self._entries[partition] = 0
        self._unnoted.add(partition)

    def extend(self, partition: int, entries: Iterable[tuple[bytes, datetime | None]]) -> int:
        db = self.db
        due_prefix, key_prefix = _prefix(b"D", partition), _prefix(b"K", partition)
        floor = self._floor.get(partition)
        # Straight after a reset (a rebuild), no customer has an entry yet: no read of
        # each one's, ~3x faster.
        look = partition not in self._unnoted
        batch = rocksdict.WriteBatch(raw_mode=True)
        count = added = 0
        for key, due in entries:
            if due is None:
                continue
            at = _us(due.timestamp())
            old = db.get(key_prefix + key) if look else None
            if old is not None:
                batch.delete(due_prefix + old + key)
            else:
                added += 1
            batch.put(due_prefix + at + key, b"")
            batch.put(key_prefix + key, at)
            floor = at if floor is None or at < floor else floor
            count += 1
            if count % _BATCH == 0:
                db.write(batch)
                batch = rocksdict.WriteBatch(raw_mode=True)
        db.write(batch)
        self._entries[partition] = self._entries.get(partition, 0) + added
        if floor is not None:
            self._floor[partition] = floor
        return count

    def drop(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._clear(partition)

    def _clear(self, partition: int) -> None:
        self._retries.drop(partition)
        self._floor.pop(partition, None)
        self._entries.pop(partition, None)
        self._unnoted.discard(partition)
        if self._db is None:
            return  # not opened yet: opening wipes it
        db = self.db
        for kind in (b"D", b"K"):
            db.delete_range(_prefix(kind, partition), _prefix(kind, partition + 1))

    def partitions(self) -> list[int]:
        return sorted(self._entries)

    def __len__(self) -> int:
        return sum(self._entries.values())

    def earliest(self, partition: int) -> float | None:
        for encoded, _ in self._range(partition, None, 1):
            return _seconds(encoded)
        return None

    def pop_due(
        self,
        partition: int,
        now: float,
        next_due: Callable[[bytes], datetime | None],
        limit: int = 10_000,
    ) -> list[bytes]:
        for key in self._retries.expired(partition):
            self.note(partition, key, next_due(key))
        if partition not in self._entries:
            return []
        until = _us(now)
        found = self._range(partition, until, limit)
        due_keys: list[bytes] = []
        db = self.db
        due_prefix, key_prefix = _prefix(b"D", partition), _prefix(b"K", partition)
        try:
            for at, key in found:
                actual = next_due(key)
                # This entry goes whatever the state says: the customer's own entry may
                # name another time (a note raced with a rebuild), and only this one
                # would otherwise come up again on every pass.
                db.delete(due_prefix + at + key)
                if actual is not None and _us(actual.timestamp()) > until:
                    self.note(partition, key, actual)  # re-armed later without a note
                    continue
                if db.get(key_prefix + key) is not None:
                    db.delete(key_prefix + key)
                    self._entries[partition] -= 1
                if actual is not None:
                    due_keys.append(key)  # else cancelled, fired or gone
        finally:
            # Even if reading a state failed: what was taken is retried, and what was
            # not stays above the floor.
            self._retries.returned(partition, due_keys)
        if len(found) < limit:
            # Nothing left due by `now`: a note before it lowers the floor again.
            self._floor[partition] = (int.from_bytes(until, "big") + 1).to_bytes(8, "big")
        elif found:
            self._floor[partition] = found[-1][0]
        return due_keys

    def _range(self, partition: int, until: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to `limit` (due time, key) of `partition` in due order, due by `until`
        (inclusive; None: any time)."""
        if partition not in self._entries:
            return []
        prefix = _prefix(b"D", partition)
        start = prefix + self._floor.get(partition, b"")
        # The bound keeps the read inside the partition's due entries: past it,
        # RocksDB stops instead of stepping over the next range's tombstones.
        if until is None:
            bound = _prefix(b"D", partition + 1)
        else:
            bound = prefix + (int.from_bytes(until, "big") + 1).to_bytes(8, "big")
        read = rocksdict.ReadOptions()
        read.set_iterate_upper_bound(bound)
        found: list[tuple[bytes, bytes]] = []
        cursor = self.db.iter(read)
        cursor.seek(start)
        while cursor.valid() and len(found) < limit:
            entry: bytes = cursor.key()
            found.append((entry[5:13], entry[13:]))
            cursor.next()
        del cursor
        return found
