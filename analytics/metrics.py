"""Prometheus metrics of the analytics and the CRM outbox (names fixed by the team contract)."""

from prometheus_client import Counter, Gauge

VARIANT_SUCCESS_RATE = Gauge(
    "outdial_variant_success_rate",
    "Success rate of completed calls per script variant over the A/B window",
    ["script", "variant"],
)
VARIANT_RETIREMENTS = Counter(
    "outdial_variant_retirements",
    "Script variants retired by the hourly A/B job",
    ["script"],
)
OUTBOX_PENDING = Gauge(
    "outdial_outbox_pending",
    "Outcome events waiting in the outbox for webhook delivery",
)
WEBHOOK_DELIVERIES = Counter(
    "outdial_webhook_deliveries",
    "Webhook POST attempts by result (delivered or the reason it failed)",
    ["reason"],
)
FOLLOW_UPS = Counter(
    "outdial_follow_ups",
    "Follow-ups chosen after calls, by channel (none: no channel may reach the lead)",
    ["channel"],
)
