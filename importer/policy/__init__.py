"""What a feed keeps: its filters, its allowlist, the MISP warning lists and the private address blocks.

``Policy.of(spec, target, cache_dir=...)`` builds one feed's policy from its options (the MISP
warning lists read from their compiled cache in ``cache_dir``, the journal's folder, when it has
a fresh one: ``wlcache``); the pipeline's producer asks
``policy.judge(indicator)`` of every indicator it reads, and counts one with a reason ``filtered``.
Below the pipeline, beside ``report``: it knows the per-feed options table (``importer.fields``)
and the feeds' model, nothing of how a run goes.
"""

from importer.policy.policy import WARNINGLISTS_BY_DEFAULT, Policy

__all__ = ["WARNINGLISTS_BY_DEFAULT", "Policy"]
