"""The HTTP API for CRM integration (`docs/openapi.json`): leads in, campaigns controlled,
DNC kept, outcomes out. `api.server.ApiServer` runs it on the daemon's event loop.
"""
