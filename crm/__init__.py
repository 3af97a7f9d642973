"""CRM side of a call: the follow-up decision (call, SMS, app push) and the webhook sender."""
