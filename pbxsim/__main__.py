"""`python -m pbxsim --ami 127.0.0.1:5038 --scenario FILE`: run the stand-in until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from pbxsim.dialplan import default_dialplan
from pbxsim.scenario import ScenarioError, load_scenario
from pbxsim.sim import PbxSim, SimConfig


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pbxsim",
        description="A protocol-faithful Asterisk stand-in: AMI server, FastAGI and AudioSocket "
        "client, simulated customers from a scenario YAML.",
    )
    p.add_argument("--ami", type=_address, default=("127.0.0.1", 5038), help="AMI HOST:PORT")
    p.add_argument("--scenario", type=Path, help="scenario YAML (customers, outcome weights)")
    p.add_argument("--agi", default="agi://127.0.0.1:4573/outdial", help="FastAGI URL of the bot")
    p.add_argument("--username", default="outdial", help="AMI user")
    p.add_argument("--secret", default="s3cret", help="AMI secret")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


async def serve(config: SimConfig) -> None:
    sim = PbxSim(config)
    await sim.start()
    print(f"pbxsim: AMI on {config.ami_host}:{sim.ami_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sim.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    try:
        scenario = load_scenario(args.scenario) if args.scenario else None
    except (ScenarioError, OSError) as exc:
        print(f"pbxsim: {exc}", file=sys.stderr)
        return 1
    host, port = args.ami
    config = SimConfig(
        ami_host=host,
        ami_port=port,
        username=args.username,
        secret=args.secret,
        dialplan=default_dialplan(args.agi),
        speed=args.speed,
        **({"scenario": scenario} if scenario else {}),
    )
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        uvloop.run(serve(config))
    except ImportError:
        asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
