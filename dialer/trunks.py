"""The trunks the dialer dials out on: their AMI links, CPS buckets and channel counts."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from dialer import metrics
from dialer.ami import AmiConnection, AmiEndpoint
from dialer.leasing import AttemptRequest, Lead
from dialer.pacing import TokenBucket
from dialer.settings import DialerSettings, TrunkSettings
from dialer.tracking import CallTracker


@dataclass
class PbxLink:
    """One AMI connection and the calls that went out over it."""

    conn: AmiConnection
    tracker: CallTracker


@dataclass
class Trunk:
    settings: TrunkSettings
    link: PbxLink
    bucket: TokenBucket
    live: int = 0  # channels reserved or in use


class Trunks:
    """The configured trunks by name; trunks on the same PBX endpoint share one AMI link."""

    def __init__(
        self,
        trunks: list[TrunkSettings],
        settings: DialerSettings,
        clock: Callable[[], datetime],
    ) -> None:
        if not trunks:
            raise ValueError("the dialer needs at least one trunk")
        names = [t.name for t in trunks]
        if len(set(names)) != len(names):
            raise ValueError(f"trunk names must be unique: {names}")
        self._settings = settings
        self._clock = clock
        self.by_name: dict[str, Trunk] = {}
        links: dict[AmiEndpoint, PbxLink] = {}
        for ts in trunks:
            endpoint = AmiEndpoint(ts.host, ts.port, ts.username, ts.secret.get_secret_value())
            if endpoint not in links:
                links[endpoint] = self._new_link(endpoint)
            self.by_name[ts.name] = Trunk(ts, links[endpoint], TokenBucket(ts.cps))

    def __getitem__(self, name: str) -> Trunk:
        return self.by_name[name]

    @property
    def links(self) -> list[PbxLink]:
        """The AMI connections (one per PBX endpoint), in trunk order."""
        return list({id(t.link): t.link for t in self.by_name.values()}.values())

    def _new_link(self, endpoint: AmiEndpoint) -> PbxLink:
        tracker = CallTracker(self._clock)
        holder: dict[str, AmiConnection] = {}

        async def on_up() -> None:
            self._update_connected_gauge()
            await tracker.resync(holder["conn"])

        conn = AmiConnection(
            endpoint,
            tracker.on_event,
            on_up,
            on_down=self._update_connected_gauge,
            backoff_initial_s=self._settings.reconnect_initial_s,
            backoff_max_s=self._settings.reconnect_max_s,
            timeout_s=self._settings.ami_timeout_s,
        )
        holder["conn"] = conn
        return PbxLink(conn, tracker)

    def start(self) -> None:
        for link in self.links:
            link.conn.start()

    async def wait_connected(self) -> None:
        for trunk in self.by_name.values():
            await trunk.link.conn.wait_ready()

    async def close(self) -> None:
        for link in self.links:
            await link.conn.close()
        metrics.AMI_CONNECTED.set(0)
        for name in self.by_name:
            metrics.AMI_UP.labels(trunk=name).set(0)

    def states(self) -> list[tuple[str, bool]]:
        """Each trunk's name and whether its AMI connection is logged in now."""
        return [(name, t.link.conn.connected) for name, t in self.by_name.items()]

    def _update_connected_gauge(self) -> None:
        states = self.states()
        for name, up in states:
            metrics.AMI_UP.labels(trunk=name).set(1 if up else 0)
        metrics.AMI_CONNECTED.set(1 if all(up for _, up in states) else 0)

    def connected(self, wanted: Iterable[str]) -> list[Trunk]:
        """The named trunks (all when none are named) whose AMI link is up."""
        names = list(wanted)
        trunks = (
            [self.by_name[n] for n in names if n in self.by_name]
            if names
            else list(self.by_name.values())
        )
        return [t for t in trunks if t.link.conn.connected]

    def ringing(self) -> int:
        """Calls originated on any link, not yet answered or ended."""
        return sum(
            1
            for link in self.links
            for c in link.tracker.calls.values()
            if c.answered_at is None and not c.ended.is_set()
        )


def assign_trunks(
    leads: list[Lead], trunks: list[Trunk], campaign_bucket: TokenBucket | None, now: float
) -> tuple[list[AttemptRequest], list[Lead]]:
    """Spread the calls over the trunks with free CPS tokens and channels: the requests, and
    the leads no trunk can take this tick."""
    requests: list[AttemptRequest] = []
    left: list[Lead] = []
    order = sorted(trunks, key=lambda t: t.live)
    i = 0
    for lead in leads:
        for _ in range(len(order)):
            trunk = order[i % len(order)]
            i += 1
            if trunk.bucket.available(now) >= 1 and trunk.live < trunk.settings.max_channels:
                trunk.bucket.take(1, now)
                if campaign_bucket is not None:
                    campaign_bucket.take(1, now)
                trunk.live += 1  # reserved now so the next lead sees the channel taken
                call_id = uuid.uuid4().hex
                requests.append(AttemptRequest(lead, call_id, trunk.settings.name, f"od-{call_id}"))
                break
        else:
            left.append(lead)
    return requests, left
