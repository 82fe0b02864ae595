"""`crm-triggers demo`: broker + worker + generator + live view, then a summary.

Starts the embedded broker (tansu, memory storage) and one worker subprocess,
waits until the worker reports ready, then produces generated journeys and
shows every decision and dead letter as it happens. Stops after `--seconds`
(or `DEMO_SECONDS`), on Ctrl-C or on SIGTERM, and always cleans up the worker
and the broker. Exits non-zero unless both built-in rules (`welcome`,
`order_thanks`) produced decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from streams.demo.demo_playbook import write_demo_rules
from streams.demo.producer import ProduceStats, produce_journeys
from streams.demo.view import DecisionView, make_console
from streams.settings import Settings
from streams.shell.embedded_broker import (
    WORKER_ENV,
    BrokerError,
    EmbeddedBroker,
    _die_with_parent,
    free_port,
)

VAR = Path("var")
BROKER_LOG = VAR / "demo-broker.log"
WORKER_LOG = VAR / "demo-worker.log"
WORKER_DATA = VAR / "demo-data"

REQUIRED_RULES = ("welcome", "order_thanks")
DEMO_CUSTOMERS = 1000
DEMO_SEED = 7
MALFORMED_SHARE = 0.02
READY_TIMEOUT_SECONDS = 60.0
WARMUP_SECONDS = 5.0
"""Events the worker gets before the demo expects decisions from it."""
IDLE_SECONDS = 2.0
"""After producing stops, wait until the view has been quiet this long..."""
MAX_DRAIN_SECONDS = 15.0
"""...but no longer than this."""
WORKER_STOP_SECONDS = 30.0


class DemoError(RuntimeError):
    pass


@dataclass
class SessionResult:
    view: DecisionView
    stats: ProduceStats
    interrupted: bool = False
    worker_died: bool = False


def _seconds_from_env(seconds: float | None) -> float | None:
    if seconds is not None:
        return seconds
    raw = os.environ.get("DEMO_SECONDS", "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError as exc:
        raise DemoError(f"DEMO_SECONDS must be a number of seconds, got {raw!r}") from exc


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class WorkerProcess:
    """`python -m streams worker` against the demo broker, output to a log file."""

    def __init__(self, broker_url: str, log_path: Path = WORKER_LOG) -> None:
        self.web_port = free_port()
        self.log_path = log_path
        shutil.rmtree(WORKER_DATA, ignore_errors=True)
        command = [
            sys.executable,
            "-m",
            "streams",
            "worker",
            "--broker",
            broker_url,
            "--web-port",
            str(self.web_port),
            "--web-host",
            "127.0.0.1",
            "--data-dir",
            str(WORKER_DATA),
        ]
        rules = write_demo_rules(WORKER_DATA.parent / "demo-rules.yaml")
        env = {
            **os.environ,
            "CRM_WEB_ENABLED": "true",
            "PYTHONUNBUFFERED": "1",
            "CRM_RULES_FILE": str(rules),
            **WORKER_ENV,
        }
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # Its own session: a Ctrl-C reaches only us, and we stop it in order.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def died_message(self) -> str:
        return (
            f"the worker exited with code {self.process.returncode}; "
            f"last lines of {self.log_path}:\n{_log_tail(self.log_path)}"
        )

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        url = f"http://127.0.0.1:{self.web_port}/health/ready"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise DemoError(self.died_message())
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or 503 while it joins the group
            time.sleep(0.2)
        raise DemoError(
            f"the worker was not ready within {timeout:g}s ({url}); "
            f"last lines of {self.log_path}:\n{_log_tail(self.log_path)}"
        )

    def stop(self, timeout: float = WORKER_STOP_SECONDS) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(5.0)
        return self.process.returncode


def _decision_topics(settings: Settings) -> list[str]:
    return [settings.decisions_topic]


async def _session(
    settings: Settings,
    seconds: float | None,
    rate: float,
    console: Console,
    worker: WorkerProcess,
) -> SessionResult:
    loop = asyncio.get_running_loop()
    stop_producing = asyncio.Event()
    stop_view = asyncio.Event()
    result = SessionResult(
        DecisionView(settings, console, _decision_topics(settings)), ProduceStats()
    )

    def on_signal() -> None:
        if stop_producing.is_set():
            stop_view.set()  # a second Ctrl-C: no waiting for stragglers
        result.interrupted = True
        stop_producing.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)

    async def watch_worker() -> None:
        while worker.alive():
            if stop_view.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_view.wait(), 0.5)
        result.worker_died = True
        stop_producing.set()
        stop_view.set()

    view_task = asyncio.create_task(result.view.run(stop_view))
    watchdog = asyncio.create_task(watch_worker())
    producer_task: asyncio.Task[ProduceStats] | None = None
    try:
        started = asyncio.create_task(result.view.started.wait())
        await asyncio.wait({view_task, started}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if view_task.done():
            view_task.result()  # the consumer could not start: raise its error
            return result
        produce_from = loop.time()
        producer_task = asyncio.create_task(
            produce_journeys(
                settings,
                customers=DEMO_CUSTOMERS,
                rate=rate,
                seconds=seconds,
                malformed_share=MALFORMED_SHARE,
                seed=DEMO_SEED,
                stop=stop_producing,
                stats=result.stats,
            )
        )
        await asyncio.wait({producer_task, view_task}, return_when=asyncio.FIRST_COMPLETED)
        if producer_task.done():
            producer_task.result()
        await _drain(result.view, stop_view, produce_from)
    finally:
        stop_producing.set()
        stop_view.set()
        watchdog.cancel()
        if producer_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await producer_task
        await view_task
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return result


async def _drain(view: DecisionView, stop_view: asyncio.Event, produce_from: float) -> None:
    """Let decisions for the last events arrive: wait for a quiet view, within limits."""
    loop = asyncio.get_running_loop()
    stopped = loop.time()
    earliest = max(stopped + IDLE_SECONDS, produce_from + WARMUP_SECONDS + IDLE_SECONDS)
    latest = stopped + MAX_DRAIN_SECONDS
    while not stop_view.is_set():
        now = loop.time()
        if now >= latest:
            return
        quiet = now - view.tally.last_record_at >= IDLE_SECONDS
        if now >= earliest and quiet and set(REQUIRED_RULES) <= view.tally.rules_seen():
            return
        if now >= earliest + WARMUP_SECONDS and quiet:
            return
        await asyncio.sleep(0.1)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(seconds: float | None, rate: float) -> int:
    """Run the whole demo; 0 when decisions for every required rule were shown."""
    console = make_console()
    try:
        seconds = _seconds_from_env(seconds)
    except DemoError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    if rate <= 0 or (seconds is not None and seconds <= 0):
        console.print("[red]error:[/] --rate and --seconds must be positive")
        return 2

    previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, _raise_interrupt)
    VAR.mkdir(parents=True, exist_ok=True)
    BROKER_LOG.unlink(missing_ok=True)
    broker = EmbeddedBroker(log_path=BROKER_LOG)
    worker: WorkerProcess | None = None
    code = 1
    try:
        broker.start()
        console.print(f"broker  : tansu (memory storage) at {broker.bootstrap}, log {BROKER_LOG}")
        settings = Settings(broker=broker.url)
        worker = WorkerProcess(broker.url)
        console.print(
            f"worker  : pid {worker.process.pid}, http://127.0.0.1:{worker.web_port}, "
            f"log {worker.log_path}"
        )
        started = time.monotonic()
        worker.wait_ready()
        duration = f"for {seconds:g}s" if seconds is not None else "until Ctrl-C"
        console.print(
            f"ready in {time.monotonic() - started:.1f}s; producing ~{rate:g} events/s "
            f"to {settings.events_topic} {duration} ({MALFORMED_SHARE:.0%} malformed)\n"
        )
        result = asyncio.run(_session(settings, seconds, rate, console, worker))
        signal.signal(signal.SIGINT, _raise_interrupt)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        console.print()
        console.print(result.view.summary(result.stats.total, result.stats.malformed))
        code = _verdict(console, result, worker)
    except (DemoError, BrokerError) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        code = 1
    except KeyboardInterrupt:
        console.print("interrupted before the demo started")
        code = 130
    finally:
        _shutdown(console, worker, broker)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code


def _verdict(console: Console, result: SessionResult, worker: WorkerProcess) -> int:
    if result.worker_died:
        console.print(f"[red]error:[/] {worker.died_message()}", soft_wrap=True)
        return 1
    missing = [rule for rule in REQUIRED_RULES if rule not in result.view.tally.rules_seen()]
    if missing:
        console.print(
            f"[red]error:[/] no decisions for {', '.join(missing)}; see {worker.log_path}",
            soft_wrap=True,
        )
        return 1
    console.print(f"[green]ok:[/] decisions for {', '.join(REQUIRED_RULES)} shown")
    return 0


def _shutdown(console: Console, worker: WorkerProcess | None, broker: EmbeddedBroker) -> None:
    try:
        if worker is not None and worker.alive():
            console.print("stopping the worker...")
            worker.stop()
        broker.stop()
    except KeyboardInterrupt:  # impatient: kill both
        if worker is not None:
            worker.process.kill()
        if broker.process is not None:
            broker.process.kill()
        raise
    console.print("stopped the worker and the broker")
