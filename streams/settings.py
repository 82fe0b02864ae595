"""One configuration model for every command: environment (`CRM_*`) < flags.

Flags are passed as init arguments, which pydantic-settings ranks above the
environment, so `--broker` always wins over `CRM_BROKER`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.core.customer_state import StateLimits
from streams.core.decoding import DecodeLimits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore", validate_default=True)

    app_id: str = Field(
        default="crm-triggers",
        description="Consumer group id and prefix of changelog topics; one per deployment",
    )
    broker: str = Field(
        default="kafka://127.0.0.1:9092",
        description="Bootstrap servers, `kafka://host:port[;host:port]`",
    )
    broker_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
    broker_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    broker_sasl_username: str | None = None
    broker_sasl_password: str | None = None
    broker_ssl_cafile: Path | None = None
    events_topic: str = "crm.events"
    dlq_topic: str = "crm.events.dlq"
    candidates_topic: str = "crm.candidates"
    decisions_topic: str = Field(
        default="crm.decisions", description="Every decision on every candidate (audit trail)"
    )
    actions_topic_prefix: str = Field(
        default="crm.actions.", description="Sent actions go to <prefix><channel>"
    )
    feedback_topic: str = Field(
        default="crm.feedback", description="Delivery feedback from channel services"
    )
    channels: list[str] = Field(
        default=["email", "sms", "push", "messenger", "task", "webhook"],
        description="Channels with an actions topic (plus every channel the rules name)",
    )
    timers_topic: str = Field(
        default="crm.timers", description="Internal: due timers fed back to the journey agent"
    )
    rules_file: Path | None = Field(
        default=None, description="Rules YAML; default: the bundled default playbook"
    )
    send_horizon_seconds: float = Field(
        default=86400.0,
        ge=0,
        description="Decisions older than this (wall clock) expire unsent: replaying history "
        "or a backlog never messages customers about the past. 0 disables",
    )
    timer_scan_interval_seconds: float = Field(
        default=0.2, gt=0, description="How often due timers are looked up"
    )
    timer_allowed_lateness_seconds: float = Field(
        default=600.0,
        ge=0,
        description="While a partition replays events older than this, its timers follow "
        "their event time less this much, so events this late still decide as in order",
    )
    timer_idle_grace_seconds: float = Field(
        default=2.0,
        gt=0,
        description="A partition without events for this long (as the broker's fetch "
        "responses confirm) has no backlog left: its timers follow the wall clock",
    )
    partitions: int = Field(
        default=8,
        ge=1,
        le=10_000,
        description="Partitions of every topic the engine creates; co-partitioned by customer",
    )
    replication_factor: int = Field(default=1, ge=1, le=16)
    store: str = Field(
        default="memory://",
        description="Table store: `memory://` or `rocksdb://` (RocksDB via rocksdict)",
    )
    data_dir: Path = Field(default=Path("var/crm-triggers"), description="Local table storage")
    rocksdb_block_cache_mb: int = Field(
        default=16,
        ge=1,
        description="rocksdb://: block cache of each partition's store (MB); Faust's is 2 GB",
    )
    rocksdb_write_buffer_mb: int = Field(
        default=8,
        ge=1,
        description="rocksdb://: memtable size of each partition's store (MB); Faust's is 64",
    )
    rocksdb_write_buffers: int = Field(
        default=2,
        ge=2,
        le=16,
        description="rocksdb://: memtables of each partition's store at most; Faust's is 3",
    )
    web_enabled: bool = True
    web_host: str = "0.0.0.0"
    web_port: int = Field(default=6066, ge=1, le=65535)
    max_message_bytes: int = Field(default=256 * 1024, ge=1024)
    max_future_skew_seconds: float = Field(default=3600.0, ge=0)
    dedupe_window: int = Field(
        default=64, ge=1, le=10_000, description="Event ids remembered per customer for dedupe"
    )
    changelog_flush_interval_seconds: float = Field(
        default=0.2, gt=0, description="How often coalesced state changes go to the changelog"
    )
    changelog_flush_events: int = Field(
        default=2000, ge=1, description="Flush the changelog after this many buffered events"
    )
    session_timeout_seconds: float = Field(default=6.0, ge=1)
    heartbeat_interval_seconds: float = Field(default=1.0, gt=0)
    producer_linger_ms: float = Field(default=5.0, ge=0)
    fetch_max_wait_ms: int = Field(
        default=500,
        ge=1,
        le=60_000,
        description="Longest a consumer fetch waits for data. Apache Kafka answers as soon as "
        "data arrives, so this only paces idle polls; the embedded broker always waits it "
        "out, so each hop costs up to this much: 20 there",
    )
    exact_end_offsets: bool = Field(
        default=False,
        description="Check the end offsets the broker reports before table recovery by reading "
        "each changelog partition's last batch: true on the embedded broker, which reports "
        "the last batch's start + 1; Apache Kafka's are exact",
    )
    direct_delivery: bool = Field(
        default=True,
        description="Hand input messages from the consumer straight to the journey and "
        "orchestrator handlers instead of through Faust's agent queues and streams (the "
        "pipeline decides ~2x as many events/s), and changelog records straight to table "
        "recovery (~5x faster); false restores Faust's paths",
    )
    producer_max_batch_bytes: int = Field(
        default=16384, ge=1, description="Producer batch size per partition"
    )
    producer_request_timeout_seconds: float = Field(
        default=1200.0,
        gt=0,
        description="How long the producer retries a batch before it fails; a worker whose "
        "output or state write fails exits (status 75) to replay from its last commit. Keep "
        "it above the broker outages to ride out: until then a flush, a revoke and a stop wait",
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`json`: one JSON object per line (time, level, logger, message, "
        "topic/partition/offset/rule_id where relevant); `text` for a terminal",
    )

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        if "://" not in value:
            value = f"kafka://{value}"
        if not value.startswith("kafka://"):
            raise ValueError("broker must look like kafka://host:port")
        return value

    @model_validator(mode="after")
    def _store_fits_the_guarantee(self) -> Settings:
        # A flush writes a state to the RocksDB files once its changelog records are
        # acknowledged; inside a transaction that is before the commit, so a kill
        # leaves files ahead of the committed changelog, and the replayed events
        # would be dropped as already seen.
        if self.processing_guarantee == "exactly_once" and self.store.startswith("rocksdb:"):
            raise ValueError(
                "processing_guarantee exactly_once needs store memory:// (rocksdb:// would "
                "keep state from transactions that a crash aborts)"
            )
        return self

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        if value not in ("memory://", "rocksdb://"):
            raise ValueError("store must be memory:// or rocksdb://")
        return value

    @property
    def rocksdb_options(self) -> dict[str, int]:
        """Faust's RocksDB options for each partition's store. Each store has its own
        cache and memtables, so a worker's RocksDB memory is bounded by stores x
        (block cache + write buffer x write buffers): with Faust's defaults, 16 stores
        (8 partitions, 2 tables) may take ~35 GB. State files beyond the cache are read
        through the OS page cache, which the kernel can reclaim."""
        mb = 1024 * 1024
        return {
            "block_cache_size": self.rocksdb_block_cache_mb * mb,
            "write_buffer_size": self.rocksdb_write_buffer_mb * mb,
            "max_write_buffer_number": self.rocksdb_write_buffers,
        }

    @property
    def rules_path(self) -> Path:
        from streams.playbook import DEFAULT_RULES

        return self.rules_file if self.rules_file is not None else DEFAULT_RULES

    @property
    def bootstrap_servers(self) -> list[str]:
        return [part for part in self.broker.removeprefix("kafka://").split(";") if part]

    @property
    def decode_limits(self) -> DecodeLimits:
        return DecodeLimits(
            max_message_bytes=self.max_message_bytes,
            max_future_skew=timedelta(seconds=self.max_future_skew_seconds),
        )

    @property
    def state_limits(self) -> StateLimits:
        return StateLimits(dedupe_window=self.dedupe_window)

    def redacted(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        if data.get("broker_sasl_password"):
            data["broker_sasl_password"] = "***"
        return data


def env_var_names() -> set[str]:
    """Every environment variable the settings model reads."""
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}
