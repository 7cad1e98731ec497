"""``ti-import verify``: what landed in the target, per feed, compared with the journal and today's feed.

``command`` orchestrates (lock, journal, target, each feed, ``--repair``), ``feed`` verifies one
feed, ``compare`` stages the three views on disk and classifies each key, ``report`` counts and
writes the JSON report.
"""

from importer.verify.command import verify_import
from importer.verify.report import FeedVerdict, VerifyReport

__all__ = ["FeedVerdict", "VerifyReport", "verify_import"]
