"""`EAGI(script,args)`: pbxsim forks an AGI script the way Asterisk's res_agi does.

As in tests/fixtures/asterisk-captures/eagi-session.json: the `agi_*` environment (with
`agi_enhanced: 1.0` and `agi_arg_N`) on the script's stdin, its commands read from its stdout,
and the caller's audio written to its file descriptor 3 in 320-byte pieces (8 kHz slin),
nothing while the caller is silent. Asterisk feeds fd 3 only between AGI commands, so a
customer talking during `STREAM FILE` is not heard (half duplex); a full pipe drops audio. A
hang-up sends the script SIGHUP (after the reply to a command in progress) and later commands
get `511`. `STREAM FILE` of a missing sound answers `200 result=-1 endpos=0`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import shutil
import signal
import threading
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING

from pbxsim.agi import (
    DEAD_REPLY,
    DEAD_TEXT,
    INVALID_REPLY,
    Reply,
    channel_environment,
    ok,
    split_args,
)
from pbxsim.audiosocket import FRAME_BYTES, BotFrame
from pbxsim.records import AgiExchange

if TYPE_CHECKING:
    from pbxsim.call import Call

log = logging.getLogger(__name__)

AUDIO_FD = 3
MAX_LINE_BYTES = 8192
SAMPLE_RATE = 8000
# After the channel is gone, a script that has not exited within this long is killed.
EXIT_GRACE_S = 5.0
STREAM_USAGE = (
    "520-Invalid command syntax.  Proper usage follows:\n"
    " Usage: STREAM FILE <filename> <escape_digits> [<sample offset>]\n"
    "520 End of proper usage."
)


def find_script(name: str, agi_dir: Path | None) -> Path | None:
    """An absolute path as given; otherwise the name in `agi_dir` (astagidir), else PATH."""
    path = Path(name)
    if path.is_absolute():
        return path if os.access(path, os.X_OK) else None
    if agi_dir is not None:
        candidate = agi_dir / name
        return candidate if os.access(candidate, os.X_OK) else None
    found = shutil.which(name)
    return Path(found) if found else None


def read_sound(path: Path) -> bytes | None:
    """The 8 kHz 16-bit mono samples of `path.wav`, or None where Asterisk could not play it."""
    try:
        with wave.open(str(path.with_name(path.name + ".wav")), "rb") as sound:
            if (sound.getframerate(), sound.getnchannels(), sound.getsampwidth()) != (
                SAMPLE_RATE,
                1,
                2,
            ):
                log.error("STREAM FILE %s: not 8 kHz 16-bit mono", path)
                return None
            return sound.readframes(sound.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        log.warning("STREAM FILE %s: %s", path, exc)
        return None


class _Speaker:
    """Plays one sound to the customer, a 20 ms frame per tick of the shared ticker."""

    def __init__(self, session: EagiSession, pcm: bytes) -> None:
        self.session = session
        self.pcm = pcm
        self.pos = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def tick(self) -> bool:
        if self.done.done():
            return False
        if self.pos >= len(self.pcm) or self.session.call.bot_dead:
            self.done.set_result(None)
            return False
        frame = self.pcm[self.pos : self.pos + FRAME_BYTES].ljust(FRAME_BYTES, b"\x00")
        self.pos += FRAME_BYTES
        call = self.session.call
        # As the AudioSocket client does: payloads are kept only when audio is recorded.
        payload = frame if call.sim.config.record_audio else b""
        call.on_bot_frame(BotFrame(time.monotonic(), payload))
        return True


class EagiSession:
    """One forked EAGI script for the bot leg of `call`; it is also the call's media leg."""

    def __init__(self, call: Call, request: str, script: Path, args: list[str]) -> None:
        self.call = call
        self.request = request
        self.script = script
        self.args = args
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.pid: int | None = None
        self._audio_w: int | None = None
        self._stdin: asyncio.WriteTransport | None = None
        self._speaker: _Speaker | None = None
        self._busy = False
        self._sighup_sent = False
        self._commands = 0
        self._frames = 0
        faults = call.sim.config.faults
        self._malformed_after = faults.eagi_malformed_reply_after
        self._close_audio_after = faults.eagi_close_audio_after

    def environment(self) -> str:
        bot = self.call.bot
        env = [
            ("agi_request", self.request),
            *channel_environment(bot, callingpres="67", enhanced="1.0"),
        ]
        env += [(f"agi_arg_{i}", arg) for i, arg in enumerate(self.args, 1)]
        return "".join(f"{k}: {v}\n" for k, v in env) + "\n"

    # --- the process ----------------------------------------------------------------------

    async def run(self) -> int:
        """Fork the script, serve its commands until it exits; returns its exit status."""
        loop = asyncio.get_running_loop()
        self.pid, (stdin_w, stdout_r, stderr_r, audio_w) = _spawn(self.script, self.args)
        os.set_blocking(audio_w, False)  # as Asterisk: a full pipe drops audio
        self._audio_w = audio_w
        exited = _wait_exit(self.pid, loop)
        stderr = asyncio.ensure_future(_read_all(stderr_r))
        try:
            stdout = asyncio.StreamReader(limit=MAX_LINE_BYTES)
            await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(stdout), os.fdopen(stdout_r, "rb", 0)
            )
            self._stdin, _ = await loop.connect_write_pipe(
                asyncio.Protocol, os.fdopen(stdin_w, "wb", 0)
            )
            self._stdin.write(self.environment().encode())
            if self.call.bot_dead:
                self._sighup()
            await self._serve(stdout)
            status = await self._reap(exited)
        finally:
            self._close_audio()
            if self._stdin is not None:
                self._stdin.close()
            if not exited.done():
                self._kill()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(exited)
            self.call.record.eagi_stderr = (await stderr).decode("utf-8", "replace")
            if not self.ended.done():
                self.ended.set_result("script_exited")
        self.call.record.eagi_status = status
        return status

    async def _reap(self, exited: asyncio.Future[int]) -> int:
        """The exit status once stdout closed; a script that lingers on a dead channel is
        killed, as it would otherwise hold a channel slot forever."""
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(exited), EXIT_GRACE_S)
            except TimeoutError:
                if self.call.bot_dead:
                    self.call.record.errors.append("eagi: script did not exit; killed")
                    self._kill()

    def _kill(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def _sighup(self) -> None:
        if self._sighup_sent or self.pid is None:
            return
        self._sighup_sent = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGHUP)

    # --- AGI commands ---------------------------------------------------------------------

    async def _serve(self, stdout: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stdout.readline()
            except ValueError:
                self.call.record.errors.append("eagi: oversized command line")
                self._reply(INVALID_REPLY)
                continue
            if not raw or not raw.endswith(b"\n"):
                return  # the script exited (or closed stdout)
            await self._handle_line(raw)

    async def _handle_line(self, raw: bytes) -> None:
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
            args = split_args(line)
        except (UnicodeDecodeError, ValueError) as exc:
            self.call.record.errors.append(f"eagi: bad line: {exc}")
            self._reply(INVALID_REPLY)
            return
        if not args:
            return
        self._busy = True
        command_id = str(random.randrange(10**6, 2**31))
        self.call.events.agi_start(command_id, line)
        try:
            reply = await self._command(args)
        finally:
            self._busy = False
        self._commands += 1
        if self._malformed_after is not None and self._commands > self._malformed_after:
            reply = Reply("this is not an AGI reply", 200, "Success")
        self.call.record.agi.append(AgiExchange(line, reply.line))
        self.call.events.agi_end(command_id, line, reply.code, reply.result)
        if reply.line is not None:
            self._reply(reply.line)
        if self.call.bot_dead:
            self._sighup()

    async def _command(self, args: list[str]) -> Reply:
        upper = [a.upper() for a in args[:2]]
        if upper == ["STREAM", "FILE"]:
            return await self._stream_file(args[2:])
        if upper == ["CHANNEL", "STATUS"]:
            return Reply(DEAD_REPLY, 511, DEAD_TEXT) if self.call.bot_dead else ok("200 result=6")
        return await self.call.commands.run(args, self)

    async def _stream_file(self, rest: list[str]) -> Reply:
        if len(rest) < 2:
            return Reply(STREAM_USAGE, 520, "Usage")
        if self.call.bot_dead:
            return Reply(DEAD_REPLY, 511, DEAD_TEXT)
        name = rest[0]
        path = Path(name) if name.startswith("/") else self.call.sim.config.sounds_dir / name
        pcm = read_sound(path)
        if pcm is None:
            return ok("200 result=-1 endpos=0", "Failure")
        self.call.record.prompts_played.append(name)
        speaker = _Speaker(self, pcm)
        self._speaker = speaker
        self.call.bot.application, self.call.bot.app_data = "STREAM FILE", name
        self.call.sim.ticker.add(speaker)
        try:
            await speaker.done
        finally:
            self._speaker = None
        samples = min(speaker.pos, len(pcm)) // 2
        if self.call.bot_dead:
            return ok(f"200 result=-1 endpos={samples}", "Failure")
        return ok(f"200 result=0 endpos={samples}")

    def _reply(self, line: str) -> None:
        if self._stdin is not None and not self._stdin.is_closing():
            self._stdin.write(f"{line}\n".encode())

    # --- the media leg (what Call uses while the script runs) ------------------------------

    @property
    def open(self) -> bool:
        return self._audio_w is not None and not self.ended.done()

    def send_audio(self, frame: bytes, kind: int = 0x10) -> None:
        """Customer audio to fd 3, unless a command (STREAM FILE) holds the channel; EAGI
        carries 8 kHz slin only (`kind` is the AudioSocket one and does not apply here)."""
        if self._audio_w is None or self._busy:
            return
        self._frames += 1
        if self._close_audio_after is not None and self._frames > self._close_audio_after:
            self._close_audio()
            return
        try:
            os.write(self._audio_w, frame)
        except BlockingIOError:
            pass  # the script is not reading: Asterisk drops the frame
        except OSError:
            self._close_audio()  # the script closed fd 3

    def send_dtmf(self, digit: str) -> None:
        """res_agi writes only voice frames to fd 3: DTMF outside STREAM FILE is not seen."""

    def hang_up(self, *, with_frame: bool) -> None:
        """The channel is gone: SIGHUP now, or after the reply to the running command."""
        if self._speaker is not None and not self._speaker.done.done():
            self._speaker.done.set_result(None)
        if not self._busy:
            self._sighup()

    def _close_audio(self) -> None:
        fd, self._audio_w = self._audio_w, None
        if fd is not None:
            os.close(fd)


async def run_eagi(call: Call, data: str) -> tuple[str, str, int] | None:
    """The `EAGI()` dialplan application; returns a Goto the script asked for, if any."""
    request, *args = [part.strip() for part in data.split(",")]
    script = find_script(request, call.sim.config.agi_dir)
    if script is None:
        log.error("EAGI(%s): script not found", request)
        call.record.errors.append(f"eagi: {request} not found")
        call.record.agi_status = "NOTFOUND"
        call.events.set_var(call.bot, "AGISTATUS", "NOTFOUND")
        return None
    session = EagiSession(call, request, script, args)
    call.media = session
    try:
        status = await session.run()
    except OSError as exc:
        log.error("EAGI(%s): cannot execute %s: %s", request, script, exc)
        call.record.errors.append(f"eagi: cannot execute {script}: {exc}")
        status = -1
    finally:
        call.media = None
    agi_status = "HANGUP" if call.bot_dead else ("SUCCESS" if status == 0 else "FAILURE")
    call.record.agi_status = agi_status
    call.events.set_var(call.bot, "AGISTATUS", agi_status)
    jump, call.pending_goto = call.pending_goto, None
    return jump


def _spawn(script: Path, args: list[str]) -> tuple[int, tuple[int, int, int, int]]:
    """Fork and exec as res_agi does: pipes on 0, 1 and 2, the audio pipe's read end on fd 3.

    Returns the pid and our ends: the script's stdin, stdout, stderr and audio."""
    pipes = [os.pipe() for _ in range(4)]
    (stdin_r, stdin_w), (stdout_r, stdout_w), (stderr_r, stderr_w), (audio_r, audio_w) = pipes
    theirs = (stdin_r, stdout_w, stderr_w, audio_r)
    ours = (stdin_w, stdout_r, stderr_r, audio_w)
    try:
        pid = os.posix_spawn(
            str(script),
            [str(script), *args],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, fd, target)
                for fd, target in zip(theirs, (0, 1, 2, AUDIO_FD), strict=True)
            ],
        )
    except OSError:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    return pid, ours


def _wait_exit(pid: int, loop: asyncio.AbstractEventLoop) -> asyncio.Future[int]:
    """The exit status of `pid`, from a thread of its own (no event-loop child watcher)."""
    exited: asyncio.Future[int] = loop.create_future()

    def wait() -> None:
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        loop.call_soon_threadsafe(lambda: exited.done() or exited.set_result(code))

    threading.Thread(target=wait, name=f"pbxsim-eagi-{pid}", daemon=True).start()
    return exited


async def _read_all(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0)
    )
    try:
        return await reader.read()
    finally:
        transport.close()
