"""What a feed keeps: its filters, its allowlist, the MISP warning lists and the private address blocks.

``Policy.of(spec, target)`` builds one feed's policy from its options; the pipeline's producer asks
``policy.judge(indicator)`` of every indicator it reads, and counts one with a reason ``filtered``.
Below the pipeline, beside ``report``: it knows the per-feed options table (``importer.fields``)
and the feeds' model, nothing of how a run goes.
"""

from importer.policy.policy import WARNINGLISTS_BY_DEFAULT, Policy

__all__ = ["WARNINGLISTS_BY_DEFAULT", "Policy"]
