"""Script evaluation, A/B allocation and retirement, reports and RFM lead scoring."""
