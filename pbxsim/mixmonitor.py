"""`MixMonitor()` as Asterisk's app_mixmonitor runs it: a recording of both directions.

What pbxsim copies from apps/app_mixmonitor.c:
- `MixMonitor(filename.ext[,options[,command]])`: a relative filename goes under the monitor
  directory; missing directories are made; MIXMONITOR_FILENAME is set to the full path (then the
  `MixMonitorStart` event). `StopMixMonitor([id])` ends it early (`MixMonitorStop`); otherwise it
  ends when the channel hangs up.
- The file holds 8 kHz signed 16-bit audio of both directions mixed (saturating add): what the
  channel *reads* (the customer) and what is *written* to it (the bot). Options: `r(file)` and
  `t(file)` also write each direction alone, `D` interleaves them as stereo (read left, write
  right; `.raw` only), `v(x)`/`V(x)`/`W(x)` scale the read/written/both volumes by 2^x
  (x from -4 to 4), `a` appends, `b` keeps only bridged audio (a pbxsim call is never bridged
  while it talks to the bot, so nothing), `s(seconds)` skips the start (1 s at least),
  `i(var)` stores the recording's id in `var`. Beeps, voicemail copies and the post-command
  are accepted and ignored.

Where pbxsim differs: it writes `.wav` (WAV, 8 kHz mono slin) and `.sln`/`.raw` (raw slin)
only, placing each frame by its arrival time (silence fills what nobody sent), and writes the
file out when the recording ends (the file exists, empty, from the start).
"""

from __future__ import annotations

import logging
import re
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

log = logging.getLogger(__name__)

RATE = 8000
FORMATS = {"wav", "sln", "raw"}
Direction = Literal["read", "write"]
_OPTION = re.compile(r"([A-Za-z])(?:\(([^)]*)\))?")
MIN_SKIP_SECONDS = 1.0


class MixMonitorError(ValueError):
    """Arguments Asterisk would refuse (it logs a warning and the application fails)."""


def split_args(data: str) -> list[str]:
    """Application arguments split on commas outside parentheses, as Asterisk does."""
    parts, depth, current = [], 0, []
    for char in data:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def _volume(text: str, option: str) -> int:
    try:
        level = int(text)
    except ValueError:
        raise MixMonitorError(f"{option}({text}): a volume from -4 to 4") from None
    if not -4 <= level <= 4:
        raise MixMonitorError(f"{option}({text}): a volume from -4 to 4")
    return level


@dataclass
class MixOptions:
    append: bool = False
    bridged_only: bool = False
    interleaved: bool = False
    read_file: str | None = None
    write_file: str | None = None
    read_volume: int = 0
    write_volume: int = 0
    skip_s: float = 0.0
    id_variable: str | None = None

    @classmethod
    def parse(cls, text: str) -> MixOptions:
        options = cls()
        for match in _OPTION.finditer(text):
            flag, arg = match[1], match[2]
            if flag == "a":
                options.append = True
            elif flag == "b":
                options.bridged_only = True
            elif flag == "D":
                options.interleaved = True
            elif flag in "rt" and arg:
                setattr(options, "read_file" if flag == "r" else "write_file", arg)
            elif flag == "v" and arg is not None:
                options.read_volume = _volume(arg, "v")
            elif flag == "V" and arg is not None:
                options.write_volume = _volume(arg, "V")
            elif flag == "W" and arg is not None:
                options.read_volume = options.write_volume = _volume(arg, "W")
            elif flag == "s" and arg:
                try:
                    skip = float(arg)
                except ValueError:
                    skip = 0.0  # Asterisk: "not a valid number; ignoring skip"
                options.skip_s = skip if skip >= MIN_SKIP_SECONDS else 0.0
            elif flag == "i" and arg:
                options.id_variable = arg
        return options


def full_path(name: str, monitor_dir: Path) -> Path:
    """A relative name lives in the monitor directory; `.wav49` is written as `.WAV`."""
    path = Path(name) if name.startswith("/") else monitor_dir / name
    if path.suffix == ".wav49":
        path = path.with_suffix(".WAV")
    return path


def _format(path: Path) -> str:
    kind = path.suffix.lstrip(".")
    if kind not in FORMATS:
        raise MixMonitorError(
            f"{path.name}: pbxsim writes only {', '.join(sorted(FORMATS))} recordings "
            "(Asterisk writes any format it has a module for)"
        )
    return kind


def _scaled(samples: np.ndarray, level: int) -> np.ndarray:
    """ast_frame_adjust_volume: multiply by 2^level, or divide by 2^-level (saturating)."""
    if level > 0:
        return samples * (1 << level)
    if level < 0:
        return samples // (1 << -level)
    return samples


@dataclass
class MixMonitor:
    """One running recording; frames come in with `time.monotonic()` arrival times."""

    path: Path
    options: MixOptions
    monitor_dir: Path
    started: float
    speed: float = 1.0
    ident: str = ""
    _frames: dict[str, list[tuple[int, bytes]]] = field(
        default_factory=lambda: {"read": [], "write": []}
    )
    stopped: bool = False

    def __post_init__(self) -> None:
        for target in self.targets():
            _format(target)
        if self.options.interleaved and self.path.suffix != ".raw":
            # Asterisk writes it anyway and the file is corrupt; pbxsim refuses.
            raise MixMonitorError("the D option needs a .raw file")
        self.ident = f"0x{id(self):x}"
        for target in self.targets():
            target.parent.mkdir(parents=True, exist_ok=True)
            if not (self.options.append and target.exists()):
                self._write(target, np.zeros(0, dtype=np.int16))

    def targets(self) -> list[Path]:
        extra = [self.options.read_file, self.options.write_file]
        return [self.path] + [full_path(name, self.monitor_dir) for name in extra if name]

    def hear(self, direction: Direction, payload: bytes, at: float) -> None:
        """A frame on the channel: `read` from the customer, `write` to them (the bot)."""
        if self.stopped or self.options.bridged_only:
            return
        offset = (at - self.started) * self.speed
        if offset < self.options.skip_s:
            return
        usable = payload[: len(payload) // 2 * 2]
        self._frames[direction].append((round(offset * RATE), usable))

    def _track(self, direction: Direction, length: int) -> np.ndarray:
        track = np.zeros(length, dtype=np.int32)
        for start, payload in self._frames[direction]:
            samples = np.frombuffer(payload, dtype="<i2").astype(np.int32)
            track[start : start + samples.size] += samples
        level = self.options.read_volume if direction == "read" else self.options.write_volume
        return np.clip(_scaled(track, level), -32768, 32767)

    def stop(self) -> list[Path]:
        """End the recording and write its files; returns them."""
        if self.stopped:
            return []
        self.stopped = True
        ends = [s + len(p) // 2 for frames in self._frames.values() for s, p in frames]
        length = max(ends, default=0)
        skipped = round(self.options.skip_s * RATE)
        read, write = (self._track(d, length)[skipped:] for d in ("read", "write"))
        if self.options.interleaved:
            main = np.column_stack([read, write]).reshape(-1)
        else:
            main = np.clip(read + write, -32768, 32767)
        written = [self._write(self.path, main.astype(np.int16))]
        if self.options.read_file:
            target = full_path(self.options.read_file, self.monitor_dir)
            written.append(self._write(target, read.astype(np.int16)))
        if self.options.write_file:
            target = full_path(self.options.write_file, self.monitor_dir)
            written.append(self._write(target, write.astype(np.int16)))
        return written

    def _write(self, target: Path, samples: np.ndarray) -> Path:
        data = samples.astype("<i2").tobytes()
        if target.suffix != ".wav":
            with target.open("ab" if self.options.append else "wb") as out:
                out.write(data)
            return target
        if self.options.append and target.exists() and target.stat().st_size > 44:
            with wave.open(str(target), "rb") as old:
                data = old.readframes(old.getnframes()) + data
        with wave.open(str(target), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(data)
        return target
