"""The ``mde`` target: the Defender for Endpoint Indicators API (API.md §3)."""
