"""The per-feed options only the ``mde`` target has (rows beside ``importer.fields.COMMON``).

Each is stamped on every indicator of the feed; which values the API takes is ``rules``' call.
"""

from __future__ import annotations

from typing import Any

from importer.checks import flag_bool, int_flag, text, text_list, typed
from importer.model import Field

__all__ = ["ACTION", "APPLICATION", "FIELDS", "GENERATE_ALERT", "PRIORITY", "RBAC_GROUPS"]

ACTION: Field[str] = Field(
    "action",
    # Alert and AlertAndBlock are still taken (the submit page lists them) but were retired in
    # January 2022 per the entity page: named apart, as legacy, so no one picks them by accident.
    "mde: Audit (default), Warn, Block, BlockAndRemediate, Allowed; legacy (retired 2022): Alert, "
    "AlertAndBlock",
    text,
    "Audit",
    target="mde",
)
GENERATE_ALERT: Field[bool] = Field(
    "generate_alert", "mde: raise an alert on a match", flag_bool, True, target="mde", cli=False
)
RBAC_GROUPS: Field[tuple[str, ...]] = Field(
    "rbac_groups", "mde: a device group the indicators apply to (repeatable)", text_list, (),
    target="mde", repeat=True, metavar="GROUP", flag_name="--rbac-group",
)  # fmt: skip
APPLICATION: Field[str | None] = Field(
    "application", "mde: the application shown with new indicators (the API never changes it on an update)",
    text, None, target="mde",
)  # fmt: skip

# Not sent: when the run's new indicators and what the tenant holds exceed the cap, the feeds of
# higher priority keep theirs first (``importer.pipeline.cap``, which reads it by its key).
PRIORITY: Field[int] = Field(
    "priority", "mde: past the tenant cap, the indicators of feeds of higher priority are kept first "
    "(then higher confidence, then the most recently first seen; default 0)",
    typed(int), 0, target="mde", flag_type=int_flag(typed(int)), metavar="N",
)  # fmt: skip

FIELDS: tuple[Field[Any], ...] = (ACTION, GENERATE_ALERT, RBAC_GROUPS, APPLICATION, PRIORITY)
