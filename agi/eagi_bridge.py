"""`outdial-eagi`: the per-call EAGI bridge for PBXes without `app_audiosocket`.

Asterisk forks it with `EAGI(outdial-eagi[,options])`: AGI on stdin/stdout (pyst2, in the
main thread), the caller's audio on file descriptor 3 (8 kHz slin, 320-byte reads, nothing
while the caller is silent). It asks the daemon's AudioSocket server for a one-time UUID
(agi/eagi_protocol.py), relays fd 3 as 0x10 frames, collects each prompt, writes it as a
temporary 8 kHz WAV into the sounds spool, plays it with `STREAM FILE` (half duplex: Asterisk
feeds fd 3 only between commands), and at the end sets the outcome variables and transfers
or hangs up, as the FastAGI path does. When the daemon cannot be used it says why with
`VERBOSE`, sets `OUTDIAL_RESULT` and, with `--fallback`, jumps to that context.

Deliberately light: no model, no asyncio, nothing of the daemon beyond the protocol module.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import signal
import socket
import sys
import wave
from collections.abc import Iterator
from typing import NamedTuple, NoReturn, TextIO

from asterisk.agi import (
    AGI,
    AGIAppError,
    AGIError,
    AGIHangup,
    AGIUnknownError,
)

from agi import eagi_protocol as proto

AUDIO_FD = 3
FRAME_BYTES = 320  # 20 ms of 8 kHz 16-bit mono, as Asterisk writes fd 3
SAMPLE_RATE = 8000
DEAD_CHANNEL = 511
PROMPT_PREFIX = "outdial-eagi-"


class MalformedReply(AGIError):
    """A reply line from Asterisk that is not an AGI reply."""


class DaemonLost(Exception):
    """The daemon connection broke or said something the bridge cannot use."""


class AudioLost(Exception):
    """File descriptor 3 (the caller's audio) closed while the call was live."""


class PlaybackFailed(Exception):
    """STREAM FILE could not play a prompt on a live channel."""


class Hungup(Exception):
    """The caller is gone (SIGHUP, a hang-up reply or 511)."""


class _Lines:
    """Asterisk's side of the AGI pipe; end of file is an error, never an empty reply
    (pyst2 would parse "" as a status code, or loop forever inside a 520 usage reply)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def readline(self) -> str:
        line = self._stream.readline()
        if not line:
            raise MalformedReply("Asterisk closed the AGI pipe")
        return line


class QuietAgi(AGI):
    """pyst2's AGI with its trace silenced and unparsable replies reported as such."""

    def __init__(self) -> None:
        self._devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
        super().__init__(stdin=_Lines(sys.stdin), stdout=sys.stdout, stderr=self._devnull)

    def get_result(self, stdin: object = None) -> dict[str, tuple[str, str]]:
        try:
            return super().get_result()
        except ValueError as exc:
            # pyst2 parses the status code with int(): EOF, "HANGUP" or garbage end up here.
            raise MalformedReply(f"unparsable AGI reply ({exc})") from exc

    @property
    def got_sighup(self) -> bool:
        try:
            self.test_hangup()
        except AGIHangup:
            return True
        return False


class Options(NamedTuple):  # not a dataclass: `dataclasses` costs ~10 ms of start-up
    server: tuple[str, int]
    sounds_dir: str
    fallback: str
    connect_timeout: float
    answer_timeout: float


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def parse_options(argv: list[str]) -> Options:
    parser = _ArgumentParser(prog="outdial-eagi", add_help=False)
    parser.add_argument("--server", type=_address, default=("127.0.0.1", 9092))
    parser.add_argument("--sounds-dir", default="/var/lib/asterisk/sounds/outdial")
    parser.add_argument("--fallback", default="", help="context to Goto when outdial is down")
    parser.add_argument("--connect-timeout", type=float, default=2.0)
    parser.add_argument("--answer-timeout", type=float, default=5.0)
    ns = parser.parse_args(argv)
    return Options(ns.server, ns.sounds_dir, ns.fallback, ns.connect_timeout, ns.answer_timeout)


def _quoted(text: str) -> str:
    """One AGI argument: pyst2 wraps it in quotes but escapes nothing."""
    flat = " ".join(text.split())
    return flat.replace("\\", "\\\\").replace('"', '\\"')


# --- prompts on disk ------------------------------------------------------------------------


class PromptSpool:
    """Temporary WAVs in the Asterisk sounds dir, each removed as soon as it was played."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._count = 0

    def check(self) -> str | None:
        """Why prompts cannot be written here, or None."""
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            return f"cannot create the sounds dir {self.directory}: {exc.strerror or exc}"
        if not os.access(self.directory, os.W_OK | os.X_OK):
            return f"the sounds dir {self.directory} is not writable"
        self._sweep()
        return None

    def _sweep(self) -> None:
        """Remove prompts left by bridges that were killed mid-prompt (their pid is gone)."""
        for entry in os.scandir(self.directory):
            pid = entry.name.removeprefix(PROMPT_PREFIX).partition("-")[0]
            if entry.name.startswith(PROMPT_PREFIX) and pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)

    @contextlib.contextmanager
    def prompt(self, pcm: bytes) -> Iterator[str]:
        """The prompt as a WAV; yields the name for STREAM FILE (no extension)."""
        self._count += 1
        name = os.path.join(self.directory, f"{PROMPT_PREFIX}{os.getpid()}-{self._count}")
        try:
            # The prompt may say the customer's name: readable by Asterisk's user alone.
            fd = os.open(f"{name}.wav", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as raw, wave.open(raw, "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(SAMPLE_RATE)
                out.writeframes(pcm)
            yield name
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{name}.wav")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the daemon connection ------------------------------------------------------------------


class DaemonLink:
    """The AudioSocket connection: caller audio out, prompts and the outcome in."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._frames = proto.FrameBuffer()
        self._pending: list[tuple[int, bytes]] = []

    def send(self, kind: int, payload: bytes = b"") -> None:
        try:
            self.sock.sendall(proto.encode_frame(kind, payload))
        except OSError as exc:
            raise DaemonLost(f"daemon connection broke: {exc}") from exc

    def send_audio(self, pcm: bytes) -> None:
        frames = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
        try:
            self.sock.sendall(b"".join(proto.encode_frame(proto.AUDIO, f) for f in frames))
        except OSError as exc:
            raise DaemonLost(f"daemon connection broke: {exc}") from exc

    def receive(self) -> list[tuple[int, bytes]]:
        """The frames that arrived (call when the socket is readable)."""
        try:
            data = self.sock.recv(65536)
        except OSError as exc:
            raise DaemonLost(f"daemon connection broke: {exc}") from exc
        if not data:
            raise DaemonLost("the daemon closed the connection without an outcome")
        return self._frames.feed(data)

    def next_frame(self) -> tuple[int, bytes]:
        """Block for one frame (the handshake)."""
        while not self._pending:
            try:
                self._pending.extend(self.receive())
            except TimeoutError as exc:
                raise DaemonLost("the outdial daemon did not answer") from exc
        return self._pending.pop(0)

    def take_pending(self) -> list[tuple[int, bytes]]:
        """Frames that arrived together with the handshake's answer."""
        pending, self._pending = self._pending, []
        return pending


# --- the call -------------------------------------------------------------------------------


class Bridge:
    def __init__(self, agi: QuietAgi, options: Options) -> None:
        self.agi = agi
        self.options = options
        self.spool = PromptSpool(options.sounds_dir)
        self._prompt = bytearray()
        self._audio_buffer = bytearray()

    def run(self) -> int:
        try:
            return self._run()
        except Hungup:
            return 0
        except AGIHangup:
            return 0
        except AGIUnknownError as exc:
            if exc.args and exc.args[0] == DEAD_CHANNEL:
                return 0
            _complain(f"unexpected AGI reply: {exc}")
            return 1
        except AGIError as exc:
            _complain(f"AGI failed: {exc}")
            return 1

    def _run(self) -> int:
        problem = self._precheck()
        if problem is not None:
            return self._fall_back(problem, "unavailable")
        call_id = self.agi.get_variable("OUTDIAL_CALL_ID")
        amd = self.agi.get_variable("AMDSTATUS")
        env = self.agi.env
        hello = proto.Hello(call_id, env.get("agi_channel", ""), env.get("agi_uniqueid", ""), amd)
        host, port = self.options.server
        try:
            sock = socket.create_connection((host, port), timeout=self.options.connect_timeout)
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            return self._fall_back(
                f"outdial daemon unreachable at {host}:{port}: {reason}", "unreachable"
            )
        link = DaemonLink(sock)
        granted = False
        try:
            outcome = self._handshake(link, hello)
            if outcome is None:
                granted = True
                outcome = self._media(link)
        except (DaemonLost, AudioLost, PlaybackFailed) as exc:
            return self._fall_back(str(exc), "failed" if granted else "unreachable")
        finally:
            sock.close()  # before any AGI command: to the daemon a closed socket is a hang-up
        self._hand_back(outcome)
        return 0

    def _precheck(self) -> str | None:
        if self.agi.env.get("agi_enhanced") != "1.0":
            return "started without EAGI(): there is no caller audio on fd 3"
        try:
            os.fstat(AUDIO_FD)
        except OSError:
            return "file descriptor 3 (the caller's audio) is not open"
        return self.spool.check()

    def _handshake(self, link: DaemonLink, hello: proto.Hello) -> proto.Outcome | None:
        """Ask for the call's UUID; an outcome instead means the daemon declined the call."""
        link.sock.settimeout(self.options.answer_timeout)
        link.send(proto.HELLO, hello.to_payload())
        kind, payload = link.next_frame()
        if kind == proto.OUTCOME:
            return _outcome(payload)
        if kind != proto.GRANT or len(payload) != 16:
            raise DaemonLost(f"the daemon answered the hello with frame kind 0x{kind:02x}")
        link.send(proto.UUID, payload)
        link.sock.settimeout(None)
        return None

    def _media(self, link: DaemonLink) -> proto.Outcome:
        """Relay audio and play prompts until the daemon sends the outcome."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        previous = signal.set_wakeup_fd(wake_w)
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(AUDIO_FD, selectors.EVENT_READ, "audio")
                selector.register(link.sock, selectors.EVENT_READ, "daemon")
                selector.register(wake_r, selectors.EVENT_READ, "signal")
                for kind, payload in link.take_pending():
                    outcome = self._on_frame(link, kind, payload)
                    if outcome is not None:
                        return outcome
                while True:
                    for key, _ in selector.select():
                        if key.data == "signal":
                            os.read(wake_r, 64)
                        elif key.data == "audio":
                            self._relay_audio(link)
                        else:
                            for kind, payload in link.receive():
                                outcome = self._on_frame(link, kind, payload)
                                if outcome is not None:
                                    return outcome
                        if self.agi.got_sighup:
                            raise Hungup
        finally:
            signal.set_wakeup_fd(previous)
            os.close(wake_r)
            os.close(wake_w)

    def _relay_audio(self, link: DaemonLink) -> None:
        data = os.read(AUDIO_FD, 4096)
        if not data:
            if self.agi.got_sighup:
                raise Hungup
            raise AudioLost("the caller's audio (fd 3) closed during the call")
        buffer = self._audio_buffer
        buffer += data
        # Whole samples go on at once, however Asterisk framed them (the daemon re-frames):
        # a playback's partial last frame is not held back until the caller speaks again.
        whole = len(buffer) - len(buffer) % 2
        if whole:
            link.send_audio(bytes(buffer[:whole]))
            del buffer[:whole]

    def _on_frame(self, link: DaemonLink, kind: int, payload: bytes) -> proto.Outcome | None:
        if kind == proto.AUDIO:
            self._prompt += payload
        elif kind == proto.PROMPT_END:
            pcm, self._prompt = bytes(self._prompt), bytearray()
            if payload == proto.PLAY:
                self._play(pcm)
                link.send(proto.PLAYED)
        elif kind == proto.OUTCOME:
            return _outcome(payload)
        else:
            raise DaemonLost(f"the daemon sent frame kind 0x{kind:02x} during the call")
        return None

    def _play(self, pcm: bytes) -> None:
        if not pcm:
            return
        with self.spool.prompt(pcm) as name:
            try:
                self.agi.stream_file(name)
            except AGIHangup as exc:
                raise Hungup from exc
            except AGIAppError as exc:
                # result=-1: a hang-up, or a file Asterisk cannot read (the spool dir).
                if not self._alive():
                    raise Hungup from exc
                raise PlaybackFailed(f"STREAM FILE {name} failed: can Asterisk read it?") from exc

    def _alive(self) -> bool:
        if self.agi.got_sighup:
            return False
        try:
            self.agi.execute("CHANNEL STATUS")
        except AGIUnknownError as exc:
            if exc.args and exc.args[0] == DEAD_CHANNEL:
                return False
            raise
        except AGIHangup:
            return False
        return True

    # --- handing the channel back ---------------------------------------------------------

    def _hand_back(self, outcome: proto.Outcome) -> None:
        if outcome.message:
            self._verbose(outcome.message)
        for name, value in outcome.variables.items():
            self.agi.set_variable(name, _quoted(value))
        if outcome.action == "transfer":
            with contextlib.suppress(AGIAppError):  # -1: the caller hung up in the queue
                self.agi.appexec(outcome.application, outcome.options)
        elif outcome.action == "hangup":
            self.agi.hangup()

    def _fall_back(self, reason: str, result: str) -> int:
        """outdial cannot take this call: say why and let the dialplan carry on."""
        self._verbose(f"outdial-eagi: {reason}")
        self.agi.set_variable("OUTDIAL_RESULT", result)
        if self.options.fallback:
            self.agi.appexec("Goto", f"{self.options.fallback},s,1")
        return 0

    def _verbose(self, message: str) -> None:
        self.agi.verbose(_quoted(message), 1)


def _outcome(payload: bytes) -> proto.Outcome:
    try:
        return proto.Outcome.from_payload(payload)
    except proto.ProtocolError as exc:
        raise DaemonLost(str(exc)) from exc


def _complain(message: str) -> None:
    """One line for the Asterisk console when AGI itself is broken (VERBOSE cannot be used)."""
    sys.stderr.write(f"outdial-eagi: {message}\n")
    sys.stderr.flush()


def _terminate(signum: int, frame: object) -> NoReturn:
    # Unwind through the finally blocks so the prompt file and the connection are cleaned up.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        agi = QuietAgi()
    except (OSError, AGIError) as exc:
        _complain(f"could not read the AGI environment: {exc}")
        return 1
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        with contextlib.suppress(AGIError):
            agi.verbose(_quoted(f"outdial-eagi: bad arguments: {exc}"), 1)
        _complain(f"bad arguments: {exc}")
        return 1
    status = Bridge(agi, options).run()
    # The channel is handed back; Asterisk's SIGHUP for it must not kill us while exiting.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return status


if __name__ == "__main__":
    sys.exit(main())
