"""One AMI connection: panoramisk's Manager, with our own login, reconnect and failure rules.

panoramisk reconnects on a fixed 2 s timer and re-sends actions that had no reply when the
link dropped; for an Originate that could dial a person twice. So this wrapper owns the
reconnect loop (exponential backoff), never re-sends anything, fails every action still in
flight with `AmiDisconnected`, and runs `on_up` after each login so the caller can resync
(events during an outage are lost). The Manager is created inside the running loop
(NOTES §4).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

log = logging.getLogger(__name__)

# Events the dialer follows; everything else is ignored without a callback.
FOLLOWED_EVENTS = ("VarSet", "Hangup", "OriginateResponse")
_MESSAGE_END = "\r\n\r\n"
# A real message is a few hundred bytes; this much without its blank line is not AMI.
MAX_MESSAGE_CHARS = 1 << 20


class AmiError(Exception):
    pass


class AmiDisconnected(AmiError):
    """The connection dropped before the action's reply: its outcome is unknown."""


class AmiLoginError(AmiError):
    pass


@dataclass(frozen=True)
class AmiEndpoint:
    host: str
    port: int
    username: str
    secret: str

    @property
    def label(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"


class _FilteringProtocol(AMIProtocol):
    """Drops unfollowed events before parsing them.

    A PBX sends about twenty events per call and only a few matter here; parsing every one
    into a panoramisk Message was most of the dialer's CPU at a few hundred calls a second.
    Replies and list items (they carry an ActionID) are always parsed.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._pending = ""

    def data_received(self, data: bytes) -> None:
        text = self._pending + data.decode(getattr(self, "encoding", "utf8"), "ignore")
        *messages, self._pending = text.split(_MESSAGE_END)
        for raw in messages:
            raw = raw.strip()
            if raw.startswith("Event: ") and "\r\nActionID: " not in raw:
                name = raw[7 : raw.find("\r\n")] if "\r\n" in raw else raw[7:]
                if name not in FOLLOWED_EVENTS:
                    continue
            try:
                message = Message.from_line(raw)
                if message is not None:
                    self.handle_message(message)
            except Exception as exc:  # noqa: BLE001 - one bad message must not end the others
                # Its text may carry numbers: only its size goes to the log.
                log.warning(
                    "AMI peer sent a %d-character message that cannot be handled (%s); skipped",
                    len(raw),
                    type(exc).__name__,
                )
        if len(self._pending) > MAX_MESSAGE_CHARS:
            # A message that never ends: the link is dropped (and made again), nothing else.
            log.error("AMI peer sent %d characters without ending a message", len(self._pending))
            self._pending = ""
            self.transport.close()


class _Manager(Manager):
    """panoramisk's Manager without its own reconnect timer."""

    def __init__(self, on_lost: Callable[[], None], **config: Any) -> None:
        super().__init__(**config)
        self._on_lost = on_lost

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if f.cancelled() or f.exception() is not None:
            return  # the supervisor awaits the connect task and sees the error itself
        super().connection_made(f)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connected = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        # Never re-send what was in flight: the caller settles it.
        self.awaiting_actions.clear()
        self._on_lost()


EventHandler = Callable[[Message], None]


class AmiConnection:
    def __init__(
        self,
        endpoint: AmiEndpoint,
        on_event: EventHandler,
        on_up: Callable[[], Awaitable[None]],
        *,
        on_down: Callable[[], None] = lambda: None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        timeout_s: float = 10.0,
    ) -> None:
        self.endpoint = endpoint
        self._on_event = on_event
        self._on_up = on_up
        self._on_down = on_down
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._timeout = timeout_s
        self._manager: _Manager | None = None
        self._lost = asyncio.Event()
        self._ready = asyncio.Event()
        self._inflight: set[asyncio.Future[Any]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.connects = 0  # successful logins, for logs and tests

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"ami {self.endpoint.label}")

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def close(self) -> None:
        """Stop at once: a connect attempt, resync or backoff wait in progress is abandoned
        (waiting a backoff out held SIGTERM up to `reconnect_max_s` with the PBX down)."""
        self._closing = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})
        self._teardown()

    async def _supervise(self) -> None:
        delay = self._backoff[0]
        failures = 0  # connect attempts failed in a row
        while not self._closing:
            try:
                await self._connect_once()
            except (OSError, AmiError, TimeoutError) as exc:
                failures += 1
                # The first failure is a WARNING; the retries of one outage are not (the
                # daemon's health monitor says once when the PBX is lost and when it is back).
                level = logging.WARNING if failures == 1 else logging.INFO
                log.log(level, "AMI %s: cannot connect (attempt %d): %s", self.endpoint.label,
                        failures, exc)  # fmt: skip
                self._teardown()
            else:
                failures = 0
                delay = self._backoff[0]
                await self._lost.wait()
                self._teardown()
                if not self._closing:
                    log.info("AMI %s: connection lost", self.endpoint.label)
            if self._closing:
                break
            # Jitter keeps several dialers from reconnecting in lockstep.
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._backoff[1])

    async def _connect_once(self) -> None:
        self._lost.clear()
        manager = _Manager(
            self._lost.set,
            host=self.endpoint.host,
            port=self.endpoint.port,
            loop=asyncio.get_running_loop(),
            ping_delay=10,
            ping_interval=10,
            protocol_factory=_FilteringProtocol,
        )
        for name in FOLLOWED_EVENTS:
            manager.register_event(name, self._dispatch)
        self._manager = manager
        await asyncio.wait_for(manager.connect(), self._timeout)
        reply = await self._send_raw(
            {
                "Action": "Login",
                "Username": self.endpoint.username,
                "Secret": self.endpoint.secret,
                "Events": "on",
            }
        )
        message = reply if isinstance(reply, Message) else reply[0]
        if not message.success:
            raise AmiLoginError(f"login refused: {message.get('Message', '')}")
        self.connects += 1
        log.info("AMI %s: logged in", self.endpoint.label)
        self._ready.set()
        try:
            await self._on_up()
        except AmiDisconnected:
            self._lost.set()  # dropped again during the resync; the loop reconnects

    def _teardown(self) -> None:
        was_ready = self._ready.is_set()
        self._ready.clear()
        if self._manager is not None:
            self._manager.close()
            self._manager = None
        for future in list(self._inflight):
            if not future.done():
                future.set_exception(AmiDisconnected(self.endpoint.label))
        self._inflight.clear()
        if was_ready:
            self._on_down()

    def _dispatch(self, _manager: Manager, event: Message) -> None:
        try:
            self._on_event(event)
        except Exception:
            # One bad event must not stop the others from being handled.
            log.exception("AMI %s: event handler failed on %s", self.endpoint.label, event.event)

    def _send_raw(self, action: dict[str, Any], as_list: bool | None = None) -> asyncio.Future[Any]:
        manager = self._manager
        if manager is None or manager.protocol is None or self._lost.is_set():
            raise AmiDisconnected(self.endpoint.label)
        future = manager.send_action(action, as_list=as_list)
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)
        return future

    def send(self, action: dict[str, Any], as_list: bool | None = None) -> asyncio.Future[Any]:
        """Send an action once; the future fails with AmiDisconnected if the link drops."""
        if not self._ready.is_set():
            raise AmiDisconnected(self.endpoint.label)
        return self._send_raw(action, as_list)

    async def request(self, action: dict[str, Any], as_list: bool | None = None) -> Any:
        """Send and await the reply, bounded by the AMI timeout."""
        return await asyncio.wait_for(self.send(action, as_list), self._timeout)

    async def core_show_channels(self) -> list[Message]:
        replies = await self.request({"Action": "CoreShowChannels"}, as_list=True)
        return [m for m in _as_list(replies) if m.get("Event") == "CoreShowChannel"]

    async def getvar(self, channel: str, variable: str) -> str | None:
        reply = _as_list(
            await self.request({"Action": "Getvar", "Channel": channel, "Variable": variable})
        )[0]
        if not reply.success:
            return None
        value = reply.get("Value")
        return value or None

    async def hangup(self, channel: str) -> None:
        with contextlib.suppress(AmiError, TimeoutError):
            await self.request({"Action": "Hangup", "Channel": channel, "Cause": "16"})


def _as_list(reply: Any) -> list[Message]:
    return list(reply) if isinstance(reply, list) else [reply]
