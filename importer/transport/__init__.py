"""Talking HTTP to a target API: one session, auth, retry, rate limits, OData paging — and no target's rules.

Nothing here knows a target's URLs or JSON; the target packages build those on top.
"""
