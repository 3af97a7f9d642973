"""Chaos: `outdial run` under bench/calls.py's customer mix while faults are injected on a
schedule, each kind several times; then the database is reconciled against pbxsim's record
of every originate and every call.

    .venv/bin/python bench/chaos.py [--rounds 3] [--gap 20] [--concurrency 6] [--json]

Fault kinds, in turn, `--rounds` times each, `--gap` seconds of steady load between two:

- `pbx_restart`: pbxsim stops (every call ends; AMI, FastAGI and AudioSocket drop together)
  and comes back 2 s later on the same port with no calls;
- `ami_drop`: the AMI connection drops alone (as `manager reload` does), calls go on;
- `db_restart`: PostgreSQL stops mid-call and starts again 2 s later;
- `db_long_stop`: PostgreSQL stays stopped `--long-stop-s` (10 s), far longer than the turn
  spool's flush interval (0.2 s);
- `sigkill`: the daemon gets SIGKILL mid-call and the harness starts it again, as systemd
  would: the dead daemon's leases come back after `dialer.lease_s` (`--lease-s`, 20 s);
- `sigterm`: the daemon gets SIGTERM under load, drains, and is started again;
- `disk_full`: the spool's disk (a 4 MB tmpfs: run as root) is filled and PostgreSQL stops
  for `--long-stop-s`, so the turns have nowhere to go; then the disk is freed and PostgreSQL
  started.

A CRM adds one new lead through the API every 2 s all along, and the hourly jobs run every
2 minutes. The daemon sends its outbox to the CRM's two webhook URLs, one of which refuses every
5th request (bench/_crm.py).

After the last fault the load runs on until every lease of a killed daemon has expired, the
daemon is stopped with SIGTERM (it drains), and the reconciliation counts:

- lost: originates with no attempt row, attempts left open, leads still leased, calls whose
  bot spoke on the wire with no bot turn in `turns`, bot turns the daemon logged as heard on
  the line (`bot turn on wire: call <id> seq <n>`, agi/call/recording.py) with no row in
  `turns` at that call and seq;
- duplicated: leads dialled more than once (the campaign allows one attempt), turn rows
  with the same call and text at two sequence numbers, a bot turn logged twice;
- the outbox, once the harness has sent what the stopped daemon left: every ended attempt
  has exactly one `call.outcome` event, and every event was accepted by each URL under its
  own idempotency key (lost: missing or undelivered events; duplicated: a second event for a
  call, or a delivery whose keys or signature do not match). An event a URL accepted twice
  (a crash between the 2xx and the commit of the delivery) is reported as `redelivered`.

The recovery time of each fault is from its end to `/readyz` answering 200 (database, AMI,
dialer and models all up); for `sigkill` and `sigterm` from the restart, so it includes the
daemon's start (models load). Exits 1 on any loss or duplicate, printing what.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agi.call.recording import BOT_TURN_LOG  # noqa: E402
from bench._crm import WEBHOOK_SECRET, CrmReceiver, reconcile_outbox, send_the_rest  # noqa: E402
from bench._rig import (  # noqa: E402
    Rig,
    logged_errors,
    rig,
    warning_examples,
    warnings_by_logger,
    wire_latency,
)
from store.outbox import pending_count  # noqa: E402

FAULTS = (
    "pbx_restart", "ami_drop", "db_restart", "db_long_stop", "sigkill", "sigterm", "disk_full"
)  # fmt: skip
LEASE_S = 20.0
_BOT_TURN_LINE = re.compile(re.escape(BOT_TURN_LOG).replace("%s", r"(\w+)").replace("%d", r"(\d+)"))
DB_LONG_STOP_S = 10.0


async def inject(setup: Rig, kind: str, long_stop_s: float = DB_LONG_STOP_S) -> float:
    """Inject one fault and end it; returns the seconds from its end (the moment the harness
    starts the PBX, the database or the daemon again) to full service."""
    db = setup.db.embedded
    assert db is not None
    if kind == "pbx_restart":
        await setup.stop_pbx()
        await asyncio.sleep(2)
        ended = time.monotonic()
        await setup.start_pbx()
    elif kind == "ami_drop":
        ended = time.monotonic()
        setup.drop_ami()
    elif kind in ("db_restart", "db_long_stop"):
        await asyncio.to_thread(db.stop)
        await asyncio.sleep(2 if kind == "db_restart" else long_stop_s)
        ended = time.monotonic()
        await asyncio.to_thread(db.start_again)
    elif kind == "disk_full":
        setup.fill_spool_disk()
        await asyncio.to_thread(db.stop)  # the turns have nowhere to go but the full disk
        await asyncio.sleep(long_stop_s)
        ended = time.monotonic()
        setup.free_spool_disk()
        await asyncio.to_thread(db.start_again)
    else:
        await setup.stop_daemon(signal.SIGKILL if kind == "sigkill" else signal.SIGTERM)
        ended = time.monotonic()
        await setup.start_daemon()
    await setup.until_ready()
    return time.monotonic() - ended


def logged_bot_turns(log_text: str) -> Counter[tuple[str, int]]:
    """(call id, seq) of every bot turn the daemon logged as heard on the line."""
    return Counter((call, int(seq)) for call, seq in _BOT_TURN_LINE.findall(log_text))


async def reconcile(setup: Rig, crm: CrmReceiver, log_text: str) -> dict[str, object]:
    pool = setup.db.pool
    originated = [r for r in setup.records if r.call_id]
    attempts = {
        r["call_id"]: r
        for r in await pool.fetch("SELECT call_id, lead_id, ended_at FROM call_attempts")
    }
    missing = [r.call_id for r in originated if r.call_id not in attempts]
    still_open = [c for c, r in attempts.items() if r["ended_at"] is None]
    leased = await pool.fetchval("SELECT count(*) FROM leads WHERE status = 'leased'")
    per_number = Counter(r.number for r in originated)
    dialled_twice = {n: k for n, k in per_number.items() if k > 1}
    stored = await pool.fetch("SELECT call_id, seq FROM turns WHERE speaker = 'bot'")
    stored_bot = {(r["call_id"], r["seq"]) for r in stored}
    bot_calls = {call_id for call_id, _ in stored_bot}
    spoke = [r.call_id for r in originated if r.bot_frames]
    turnless = [c for c in spoke if c not in bot_calls]
    logged = logged_bot_turns(log_text)
    unstored = sorted(key for key in logged if key not in stored_bot)
    logged_twice = sorted(key for key, n in logged.items() if n > 1)
    # The same turn (its timings carry its own timestamps) stored at two sequence numbers.
    repeated_turns = await pool.fetchval(
        """SELECT count(*) - count(DISTINCT (call_id, speaker, text, timings::text)) FROM turns
           WHERE timings <> '{}'::jsonb"""
    )
    lost: dict[str, int] = {
        "originates_without_attempt": len(missing),
        "attempts_left_open": len(still_open),
        "leads_still_leased": leased,
        "calls_with_bot_speech_but_no_bot_turn": len(turnless),
        "bot_turns_logged_on_wire_not_stored": len(unstored),
    }
    duplicated: dict[str, int] = {
        "leads_dialled_twice": len(dialled_twice),
        "turns_written_twice": repeated_turns,
        "bot_turns_logged_on_wire_twice": len(logged_twice),
    }
    outbox = await reconcile_outbox(setup.db.pool, crm)
    lost.update(outbox["lost_detail"])
    duplicated.update(outbox["duplicated_detail"])
    return {
        "originates": len(originated),
        "attempts": len(attempts),
        "calls_bot_spoke": len(spoke),
        "turns": await pool.fetchval("SELECT count(*) FROM turns"),
        "bot_turns_logged_on_wire": sum(logged.values()),
        "bot_turns_stored": len(stored_bot),
        "outbox": outbox["outbox"],
        "lost_detail": lost,
        "duplicated_detail": duplicated,
        "lost": sum(lost.values()),
        "duplicated": sum(duplicated.values()),
        "examples": {
            "missing": missing[:5],
            "open": still_open[:5],
            "turnless": turnless[:5],
            "unstored_bot_turns": unstored[:5],
        },
    }


async def run(
    rounds: int,
    gap: float,
    concurrency: int,
    kinds: tuple[str, ...] = FAULTS,
    lease_s: float = LEASE_S,
    long_stop_s: float = DB_LONG_STOP_S,
    drain_s: float | None = None,
    keep_log: Path | None = None,
) -> dict[str, object]:
    """`lease_s`: the daemon's `dialer.lease_s`; `long_stop_s`: how long `db_long_stop` and
    `disk_full` keep PostgreSQL down (the spool flushes every 0.2 s); `drain_s`: the daemon's
    `dialer.drain_timeout_s` (None: its default), how long a SIGTERM lets live calls finish;
    `keep_log`: where to copy the daemon's log (every start of it) for a later look."""
    faults = len(kinds) * rounds
    minutes = (faults * (gap + 15) + lease_s + 120) / 60
    leads = int(concurrency * minutes * 8) + 100
    receiver = CrmReceiver()
    await receiver.start()
    async with rig(concurrency, leads, lease_s=lease_s) as setup:
        setup.webhooks, setup.webhook_secret = receiver.config(), WEBHOOK_SECRET
        setup.drain_s = drain_s
        if "disk_full" in kinds:
            setup.mount_spool_disk()
        setup.write_config()
        await setup.start_daemon()
        stop_crm = asyncio.Event()
        crm = asyncio.create_task(setup.add_leads_through_the_api(2.0, stop_crm))
        started = time.monotonic()
        recovery: dict[str, list[float]] = {kind: [] for kind in kinds}
        injected: list[dict[str, object]] = []
        for index in range(faults):
            await asyncio.sleep(gap)
            kind = kinds[index % len(kinds)]
            at = time.monotonic() - started
            seconds = await inject(setup, kind, long_stop_s)
            recovery[kind].append(round(seconds, 2))
            injected.append({"kind": kind, "at_s": round(at, 1), "recovery_s": round(seconds, 2)})
            print(f"{at:7.1f} s  {kind:<13} back to full service in {seconds:.1f} s", flush=True)
        await asyncio.sleep(lease_s + 5)  # the killed daemons' leases come back
        stop_crm.set()
        api_statuses = await crm
        live_before_stop = (await setup.metrics()).get("outdial_active_calls", 0.0)
        code = await setup.stop_daemon(signal.SIGTERM)
        ended = time.monotonic()
        outbox_left_at_stop = await pending_count(setup.db.pool)
        await send_the_rest(setup.db.pool, receiver)
        log_text = setup.log_path.read_text(errors="replace")
        if keep_log is not None:
            await asyncio.to_thread(keep_log.write_text, log_text)
        result = await reconcile(setup, receiver, log_text)
    await receiver.stop()
    return {
        "concurrency": concurrency,
        "rounds": rounds,
        "duration_s": round(ended - started, 1),
        "faults_injected": len(injected),
        "faults": injected,
        "recovery_s": {
            kind: {"n": len(v), "median": statistics.median(v), "max": max(v)}
            for kind, v in recovery.items()
            if v
        },
        **result,
        # PUT answers (0: no answer, the daemon was restarting); each 201 is a lead to settle.
        "api_leads": {str(k): v for k, v in sorted(api_statuses.items())},
        "live_calls_at_final_sigterm": live_before_stop,
        "outbox_left_at_final_sigterm": outbox_left_at_stop,
        "final_exit_code": code,
        "wire": wire_latency(setup.records, started, ended, setup.stalls),
        "daemon_tracebacks": logged_errors(log_text),
        "daemon_warnings": warnings_by_logger(log_text),
        "daemon_warning_examples": warning_examples(log_text),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="times each fault kind is injected")
    parser.add_argument("--gap", type=float, default=20.0, help="seconds of load between faults")
    parser.add_argument("--concurrency", type=int, default=6, help="calls at once")
    parser.add_argument(
        "--kinds", default=",".join(FAULTS), help="fault kinds, comma-separated, in this order"
    )
    parser.add_argument("--lease-s", type=float, default=LEASE_S, help="the daemon's lease_s")
    parser.add_argument(
        "--long-stop-s", type=float, default=DB_LONG_STOP_S, help="PostgreSQL down this long"
    )
    parser.add_argument(
        "--drain-s", type=float, help="the daemon's dialer.drain_timeout_s (default: 30 s)"
    )
    parser.add_argument("--keep-log", type=Path, help="copy the daemon's log here")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    kinds = tuple(args.kinds.split(","))
    if unknown := set(kinds) - set(FAULTS):
        parser.error(f"unknown fault kinds: {', '.join(sorted(unknown))}")
    result = asyncio.run(
        run(
            args.rounds,
            args.gap,
            args.concurrency,
            kinds,
            args.lease_s,
            args.long_stop_s,
            args.drain_s,
            args.keep_log,
        )
    )
    for key, value in result.items():
        if key != "faults":
            print(f"{key:>28}: {value}")
    if result["lost"] or result["duplicated"]:
        print(f"MISMATCH: lost {result['lost']}, duplicated {result['duplicated']}")
    if args.json:
        print(json.dumps(result, default=str))
    sys.exit(1 if result["lost"] or result["duplicated"] else 0)


if __name__ == "__main__":
    main()
