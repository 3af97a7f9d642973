"""EAGI bridge start-up: time from exec to its first AGI command, and its peak memory.

    .venv/bin/python bench/eagi_bridge.py [--runs N] [--json]

Plays Asterisk for `outdial-eagi` N times (fork with the EAGI environment on stdin and an
audio pipe on fd 3, as res_agi does), times the first command line on stdout (the bridge
has imported everything and parsed the environment), then answers its commands until it
exits; the daemon address is a closed port, so each run ends in the fallback path. Peak RSS
comes from wait4(). Two start-up figures: the installed console script (setuptools'
editable finder adds ~30 ms of imports that a normal `pip install .` does not have) and
`python -m agi.eagi_bridge` from the source tree.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BRIDGE = Path(sys.executable).with_name("outdial-eagi")
ENV = (
    "agi_request: outdial-eagi\nagi_channel: Local/5551000@customers-00000001;1\n"
    "agi_uniqueid: 1795500397.26\nagi_context: bot-eagi\nagi_enhanced: 1.0\n\n"
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_run(argv: list[str]) -> tuple[float, int]:
    """Seconds to the first command, peak RSS in bytes."""
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    audio_r, audio_w = os.pipe()
    devnull = os.open(os.devnull, os.O_WRONLY)
    started = time.perf_counter()
    pid = os.posix_spawn(
        argv[0],
        argv,
        dict(os.environ, PYTHONPATH=str(ROOT)),
        file_actions=[
            (os.POSIX_SPAWN_DUP2, stdin_r, 0),
            (os.POSIX_SPAWN_DUP2, stdout_w, 1),
            (os.POSIX_SPAWN_DUP2, devnull, 2),
            (os.POSIX_SPAWN_DUP2, audio_r, 3),
        ],
    )
    for fd in (stdin_r, stdout_w, audio_r, devnull):
        os.close(fd)
    replies = iter(["200 result=1 (c-1)", "200 result=1 (HUMAN)", "200 result=1", "200 result=1"])
    os.write(stdin_w, ENV.encode())
    first = None
    with os.fdopen(stdout_r, "r") as commands:
        for _command in commands:
            if first is None:
                first = time.perf_counter() - started
            os.write(stdin_w, f"{next(replies, '200 result=0')}\n".encode())
    _, status, usage = os.wait4(pid, 0)
    os.close(stdin_w)
    os.close(audio_w)
    if os.waitstatus_to_exitcode(status) != 0 or first is None:
        raise SystemExit(f"bridge run failed: status {status}")
    return first, usage.ru_maxrss * 1024


def measure(argv: list[str], runs: int) -> dict[str, float]:
    one_run(argv)  # warm the page cache and the .pyc files
    results = [one_run(argv) for _ in range(runs)]
    starts = sorted(r[0] * 1000 for r in results)
    return {
        "start_ms_median": round(statistics.median(starts), 1),
        "start_ms_p90": round(starts[int(0.9 * (len(starts) - 1))], 1),
        "peak_rss_mb": round(max(r[1] for r in results) / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    port = _closed_port()
    with tempfile.TemporaryDirectory() as sounds:
        options = [f"--server=127.0.0.1:{port}", f"--sounds-dir={sounds}"]
        console = measure([str(BRIDGE), *options], args.runs)
        module = measure([sys.executable, "-m", "agi.eagi_bridge", *options], args.runs)
    print(f"outdial-eagi start-up over {args.runs} runs (exec -> first AGI command)")
    for name, figures in (("console script", console), ("python -m", module)):
        print(
            f"  {name:15s} median {figures['start_ms_median']:6.1f} ms   "
            f"p90 {figures['start_ms_p90']:6.1f} ms   peak RSS {figures['peak_rss_mb']:5.1f} MB"
        )
    if args.json:
        print(json.dumps({"runs": args.runs, "console_script": console, "module": module}))


if __name__ == "__main__":
    main()
