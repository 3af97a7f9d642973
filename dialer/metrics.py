"""Dialer metrics (names and labels fixed in the team's contracts; never a call id or number)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CALLS = Counter("outdial_calls_total", "Settled call attempts", ["campaign", "disposition"])
ORIGINATES = Counter("outdial_originates_total", "Originate actions sent", ["campaign"])
ANSWERED = Counter(
    "outdial_answered_total", "Originates answered (person or machine)", ["campaign"]
)
ANSWER_RATE = Gauge("outdial_answer_rate", "Recent answered / settled attempts", ["campaign"])
ABANDONED_RATE = Gauge(
    "outdial_abandoned_rate", "Abandoned / person-answered calls, rolling 30 days", ["campaign"]
)
AMI_CONNECTED = Gauge("outdial_ami_connected", "1 while every AMI connection is logged in")
AMI_UP = Gauge("outdial_ami_up", "1 while the trunk's AMI connection is logged in", ["trunk"])
BLOCKED = Counter(
    "outdial_dialer_blocked_total", "Leads stopped by a compliance gate", ["campaign", "reason"]
)
