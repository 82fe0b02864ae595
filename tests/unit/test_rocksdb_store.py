"""RocksDB stores get bounded memory: Faust's defaults give each partition's store a
2 GB block cache and up to 3 x 64 MB memtables, ~35 GB for a worker owning 8
partitions of the 2 tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import Settings
from streams.shell.app import create_app

MB = 1024 * 1024


@pytest.mark.asyncio
async def test_each_partition_store_is_opened_with_the_configured_memory_bounds(
    tmp_path: Path,
) -> None:
    settings = Settings(
        store="rocksdb://",
        web_enabled=False,
        data_dir=tmp_path,
        rocksdb_block_cache_mb=24,
        rocksdb_write_buffer_mb=4,
        rocksdb_write_buffers=3,
    )
    app = create_app(settings)
    tables = [app.tables[name] for name in app.tables]
    assert len(tables) == 2
    for table in tables:
        options = table.data.rocksdb_options
        assert (options.block_cache_size, options.write_buffer_size) == (24 * MB, 4 * MB)
        assert options.max_write_buffer_number == 3
        db = table.data._db_for_partition(0)  # what a worker opens per assigned partition
        db[b"c-1"] = b"{}"
        assert db[b"c-1"] == b"{}"


def test_defaults_bound_a_worker_with_8_partitions_of_both_tables_under_half_a_gb() -> None:
    options = Settings(store="rocksdb://").rocksdb_options
    per_store = options["block_cache_size"] + (
        options["write_buffer_size"] * options["max_write_buffer_number"]
    )
    assert 16 * per_store <= 512 * MB
