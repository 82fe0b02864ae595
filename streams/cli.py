"""`crm-triggers` command line: broker, worker, config, generate, demo, schemas."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from streams.settings import Settings

SETTING_FLAGS: dict[str, tuple[str, type]] = {
    "--broker": ("broker", str),
    "--app-id": ("app_id", str),
    "--partitions": ("partitions", int),
    "--store": ("store", str),
    "--data-dir": ("data_dir", str),
    "--web-port": ("web_port", int),
    "--web-host": ("web_host", str),
    "--events-topic": ("events_topic", str),
    "--dlq-topic": ("dlq_topic", str),
    "--candidates-topic": ("candidates_topic", str),
    "--timers-topic": ("timers_topic", str),
    "--rules": ("rules_file", str),
    "--max-message-bytes": ("max_message_bytes", int),
    "--log-level": ("log_level", str),
}


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (override CRM_* environment variables)")
    for flag, (field, kind) in SETTING_FLAGS.items():
        help_text = Settings.model_fields[field].description or f"CRM_{field.upper()}"
        group.add_argument(flag, dest=field, type=kind, default=None, help=help_text)
    group.add_argument(
        "--without-web",
        dest="web_enabled",
        action="store_const",
        const=False,
        default=None,
        help="Do not start the web server (metrics, health)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for field, _kind in SETTING_FLAGS.values():
        value = getattr(args, field, None)
        if value is not None:
            overrides[field] = value
    if getattr(args, "web_enabled", None) is not None:
        overrides["web_enabled"] = args.web_enabled
    return Settings(**overrides)


def cmd_config(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    data = settings.redacted()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        width = max(len(name) for name in data)
        for name, value in data.items():
            print(f"CRM_{name.upper():<{width}}  {value}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.shell.worker import run_worker

    return run_worker(settings_from(args))


def cmd_broker(args: argparse.Namespace) -> int:
    from streams.shell.embedded_broker import WORKER_ENV, EmbeddedBroker

    log_path = Path(args.log_file) if args.log_file else None
    broker = EmbeddedBroker(port=args.port, log_path=log_path)
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    broker.start()
    print(f"embedded broker (tansu, memory storage) listening on {broker.bootstrap}", flush=True)
    print(f"export CRM_BROKER={broker.url}", flush=True)
    # Workers on this broker need these settings (see the README).
    for name, value in WORKER_ENV.items():
        print(f"export {name}={value}", flush=True)
    print(f"logs: {broker.log_path}", flush=True)
    try:
        while not stop.wait(0.5):
            if not broker.alive():
                print("broker exited unexpectedly; see the log", file=sys.stderr)
                return 1
    finally:
        broker.stop()
    print("broker stopped", flush=True)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from streams.demo.producer import run_generator

    return run_generator(
        settings_from(args),
        args.customers,
        args.rate,
        args.seconds,
        args.malformed_share,
        args.seed,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo.session import run_demo

    return run_demo(args.seconds, args.rate)


def cmd_rules_check(args: argparse.Namespace) -> int:
    from streams.core.engine import load_engine
    from streams.core.rules_loader import RulesError
    from streams.rules_summary import describe

    path = Path(args.file)
    try:
        engine = load_engine(path.read_text(encoding="utf-8"), str(path))
    except RulesError as exc:
        print(exc, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in {path}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 1
    for line in describe(engine):
        print(line)
    print(f"{path}: {len(engine.rules)} rules OK")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from datetime import datetime

    from streams.core.rules_loader import RulesError
    from streams.playbook import DEFAULT_RULES
    from streams.simulator import run_simulation

    until = None
    if args.until:
        until = datetime.fromisoformat(args.until)
        if until.tzinfo is None:
            print("--until needs a zone, e.g. 2026-12-01T00:00:00Z", file=sys.stderr)
            return 2
    rules = Path(args.rules) if args.rules else DEFAULT_RULES
    try:
        summary = run_simulation(
            Path(args.events),
            rules,
            until,
            Path(args.out) if args.out else None,
            Path(args.state_out) if args.state_out else None,
            jobs=args.jobs or (os.cpu_count() or 1),
            rejects=Path(args.rejects) if args.rejects else None,
        )
    except RulesError as exc:
        print(exc, file=sys.stderr)
        return 1
    rejected = sum(summary.rejected.values())
    print(
        f"{summary.events} events, {rejected} rejected, {summary.duplicates} duplicates, "
        f"{summary.customers} customers, {summary.timers_fired} timers fired, "
        f"{summary.decisions} decisions (until {summary.until})",
        file=sys.stderr,
    )
    outcomes: dict[str, int] = {}
    for (_, outcome, code), count in summary.by_outcome.items():
        label = outcome if outcome == code or outcome == "sent" else f"{outcome} ({code})"
        outcomes[label] = outcomes.get(label, 0) + count
    for rule_id, count in sorted(summary.by_rule.items()):
        print(f"  {rule_id:<24} {count}", file=sys.stderr)
    for label, count in sorted(outcomes.items()):
        print(f"  {label:<40} {count}", file=sys.stderr)
    for code, count in sorted(summary.rejected.items()):
        print(f"  rejected {code:<15} {count}", file=sys.stderr)
    if rejected and not args.rejects:
        print("  (--rejects FILE lists each rejected line and why)", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from rich.console import Console

    from streams.playbook import DEFAULT_RULES
    from streams.report import run_report

    rules = Path(args.rules) if args.rules else DEFAULT_RULES
    console = Console()
    if not console.is_terminal or console.width < 150:
        console = Console(width=180)  # a wide table: never squeeze it into 80 columns
    run_report(Path(args.decisions), Path(args.events), rules, console)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    import orjson

    from streams.demo.history import JOURNEYS, REALISTIC, generate_history

    end = datetime.fromisoformat(args.end) if args.end else datetime.now(UTC)
    if end.tzinfo is None:
        print("--end needs a zone, e.g. 2026-12-01T00:00:00Z", file=sys.stderr)
        return 2
    mix = REALISTIC if args.mix == "browsing" else JOURNEYS
    events = generate_history(args.customers, args.days, end, seed=args.seed, mix=mix)
    with open(args.out, "wb") as handle:
        for event in events:
            handle.write(orjson.dumps(event) + b"\n")
    print(f"{len(events)} events of {args.customers} customers over {args.days} days -> {args.out}")
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from schemas.export import main as export_main

    return export_main(["--check"] if args.check else [])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crm-triggers", description="Decide when and whether to contact each customer."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("worker", help="Run a stream worker (journey agent)")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("config", help="Print the effective configuration")
    _add_setting_flags(p)
    p.add_argument("--json", action="store_true", help="Print JSON")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("broker", help="Run the embedded Kafka-compatible broker (tansu)")
    p.add_argument("--port", type=int, default=None, help="Port (default: a free one)")
    p.add_argument("--log-file", default=None, help="Broker log file")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("generate", help="Produce realistic customer journeys to the events topic")
    _add_setting_flags(p)
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--rate", type=float, default=200.0, help="Events per second")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--malformed-share", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("demo", help="Broker + worker + generator + live view of decisions")
    p.add_argument("--seconds", type=float, default=None, help="Stop after N seconds")
    p.add_argument("--rate", type=float, default=40.0, help="Generated events per second")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("rules", help="Work with rules files")
    rules_sub = p.add_subparsers(dest="rules_command", required=True)
    check = rules_sub.add_parser("check", help="Validate a rules file and summarise each rule")
    check.add_argument("file")
    check.set_defaults(func=cmd_rules_check)

    p = sub.add_parser("simulate", help="Run the engine offline over a JSONL event history")
    p.add_argument("--events", required=True, help="JSONL file, one event envelope per line")
    p.add_argument("--rules", default=None, help="Rules YAML (default: bundled playbook)")
    p.add_argument("--until", default=None, help="Advance the clock to this RFC 3339 time")
    p.add_argument("--out", default=None, help="Write decisions (JSONL)")
    p.add_argument("--state-out", default=None, help="Write final customer states (JSONL)")
    p.add_argument(
        "--rejects",
        default=None,
        help="Write each rejected line with its line number and reason (JSONL, in line "
        "order; the dead-letter record's fields)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="Processes, customers split by id hash (0 = one per CPU). Population statistics "
        "are learned per job, as per worker in production",
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("report", help="Per-rule decisions and conversion vs holdout")
    p.add_argument("--decisions", required=True, help="Decisions JSONL (simulate --out)")
    p.add_argument("--events", required=True, help="Events JSONL (orders are conversions)")
    p.add_argument("--rules", default=None, help="Rules YAML (attribution windows)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("history", help="Write a seeded history of customer journeys (JSONL)")
    p.add_argument("--customers", type=int, default=10_000)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--end", default=None, help="RFC 3339 end of the period (default: now)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--mix",
        choices=("journeys", "browsing"),
        default="journeys",
        help="journeys: every customer registers or orders (dense in triggers); browsing: "
        "half the customers only browse and page views and visits are ~80%% of events",
    )
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("schemas", help="Export the contracts' JSON Schemas to schemas/json/")
    p.add_argument("--check", action="store_true", help="Fail if the exported files are stale")
    p.set_defaults(func=cmd_schemas)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ValidationError as exc:
        print(f"invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`rules check ... | head`): not an error of ours. Python
        # would report it again when flushing stdout at exit, so point stdout elsewhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command ended by it
    return result
