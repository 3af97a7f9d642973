"""The dialer's compliance gates: the decisions are the pure functions of `compliance.gates`;
the dialer's leasing gathers each lead's facts in its lease queries and applies `evaluate`
with the campaign's `CallingPolicy` when a lead is leased and again just before its
Originate."""

from compliance.gates import (
    BlockReason,
    LeadFacts,
    Verdict,
    evaluate,
    lead_zone,
    local_date,
)

__all__ = ["BlockReason", "LeadFacts", "Verdict", "evaluate", "lead_zone", "local_date"]
