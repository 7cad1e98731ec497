"""The inspection document of ``GET /_emulator/state``: what is stored, issued and counted."""

from __future__ import annotations

from typing import Any

from importer.emulator.state import EmulatorState

__all__ = ["snapshot"]

# Per workspace, per tenant and in totals. Objects: every current object of any type, revoked ones
# included; indicators: of those, the indicators; revoked: of those, the revoked (any type).
_SENTINEL_KEYS = ("sentinel_objects", "sentinel_indicators", "sentinel_revoked",
                  "sentinel_duplicate_patterns")


def _sentinel_workspaces(state: EmulatorState, tenant: str) -> list[dict[str, Any]]:
    """The tenant's Sentinel workspaces and what each holds."""
    found = []
    for workspace in state.config.sentinel_workspaces:
        if workspace.tenant != tenant:
            continue
        held = state.store.sentinel.get(workspace.workspace_id.lower())
        found.append({
            "workspace_id": workspace.workspace_id, "name": workspace.name,
            "sentinel_objects": 0 if held is None else len(held.objects),
            "sentinel_indicators": 0 if held is None else len(held.indicator_ids),
            "sentinel_revoked": 0 if held is None else held.revoked,
            "sentinel_duplicate_patterns": 0 if held is None else held.duplicate_patterns,
        })
    return found


def snapshot(state: EmulatorState) -> dict[str, Any]:
    """The state document; its keys are stable (tests and the demo rely on them)."""
    tenants: dict[str, dict[str, Any]] = {}
    totals = {"alert_definitions": 0, "iocs": 0, "duplicate_iocs": 0, "mde_indicators": 0,
              **dict.fromkeys(_SENTINEL_KEYS, 0)}
    names = sorted({*state.store.ti, *state.store.mde, *(c.tenant for c in state.config.clients),
                    *(w.tenant for w in state.config.sentinel_workspaces)})
    for name in names:
        ti = state.store.ti.get(name)
        mde = state.store.mde.get(name)
        definitions = [] if ti is None else [
            {"id": definition_id, "name": entity["Name"],
             "ioc_count": len(ti.iocs_by_definition[definition_id]),
             "duplicate_iocs": ti.duplicates_by_definition[definition_id]}
            for definition_id, entity in ti.definitions.items()
        ]
        workspaces = _sentinel_workspaces(state, name)
        counts = {
            "iocs": 0 if ti is None else len(ti.iocs),
            "duplicate_iocs": 0 if ti is None else ti.duplicates,
            "mde_indicators": 0 if mde is None else len(mde.indicators),
            **{key: sum(w[key] for w in workspaces) for key in _SENTINEL_KEYS},
        }
        if mde is not None:
            mde.refresh(state.config.clock())
        # Per tenant only (``totals`` keeps its keys): stored MDE indicators whose expiry has passed.
        expired = 0 if mde is None else len(mde.expired)
        tenants[name] = {"alert_definitions": definitions, **counts, "mde_expired_indicators": expired,
                         "sentinel_workspaces": workspaces}
        totals["alert_definitions"] += len(definitions)
        for key, value in counts.items():
            totals[key] += value
    return {
        "tenants": tenants,
        "totals": totals,
        "requests_by_status": {str(status): n for status, n in sorted(state.requests_by_status.items())},
        "tokens_issued": state.tokens.issued,
        "faults_injected": dict(state.fault_counts),
    }
