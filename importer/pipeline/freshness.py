"""Whether an indicator the target already holds must be sent again: what "already present" means.

Held is not enough: the tenant must hold what the feed says *now*. An indicator is sent again
(an update, counted ``updated``) when the stamp of what the target holds (``model.Stamp``, from the
journal or a listing) differs from the stamp of what would be sent today:

* its **metadata** changed (mde: title, severity, action...; ti: detection function, enabled);
* its **fixed expiry** changed (the feed's own, e.g. a STIX ``valid_until`` moved; or it was dropped);
* its **rolling expiry** is due: with ``expire_days = N`` each run would set "today + N", which
  differs every night; sending all of them every night would cost a full import, so an
  indicator is refreshed only once less than ``expire_refresh`` x N of its expiry remains (by
  default half: each indicator is refreshed every N/2 days, and never lapses while listed).

A row the journal recorded before stamps existed has none: it is taken to hold today's metadata
and the expiry it was given when first recorded (``since`` + N days), and that assumed stamp is
recorded without sending anything — unless the expiry it implies is due, so that an upgrade
neither re-sends everything nor lets anything lapse.
"""

from __future__ import annotations

from dataclasses import dataclass

from importer.fields import EXPIRE_DAYS, EXPIRE_REFRESH
from importer.model import DefinitionSpec, Held, Stamp

__all__ = ["Freshness", "Verdict"]

_DAY = 86_400


@dataclass(frozen=True, slots=True)
class Verdict:
    """``send``: send it again; else ``adopt``, when set, is the stamp to record without sending."""

    send: bool
    adopt: Stamp | None = None


_SEND = Verdict(send=True)
_KEEP = Verdict(send=False)


@dataclass(frozen=True, slots=True)
class Freshness:
    """One feed's rule (its ``expire_days`` and ``expire_refresh``)."""

    rolling_days: int | None = None
    refresh_share: float = 0.5

    @classmethod
    def of(cls, spec: DefinitionSpec) -> Freshness:
        return cls(spec[EXPIRE_DAYS], spec[EXPIRE_REFRESH])

    def judge(self, held: Held, wanted: Stamp, *, own_expiry: bool) -> Verdict:
        """The verdict for an indicator held as ``held`` that would be sent as ``wanted`` today;
        ``own_expiry``: the indicator carries its own expiry (not the rolling default)."""
        stored = held.stamp
        if stored is None:
            assumed = wanted
            if self.rolling_days is not None and not own_expiry and held.since:
                assumed = wanted.with_expires(held.since + self.rolling_days * _DAY)
            return _SEND if self._expiry_due(assumed, wanted, own_expiry) else Verdict(False, assumed)
        if stored.meta != wanted.meta or self._expiry_due(stored, wanted, own_expiry):
            return _SEND
        return _KEEP

    def _expiry_due(self, stored: Stamp, wanted: Stamp, own_expiry: bool) -> bool:
        if own_expiry or self.rolling_days is None or stored.expires is None or wanted.expires is None:
            return stored.expires != wanted.expires  # a fixed expiry: any change is sent
        # ``wanted`` is today + N, so "less than share x N remains" is "it lags today's by more
        # than (1 - share) x N".
        return wanted.expires - stored.expires > (1 - self.refresh_share) * self.rolling_days * _DAY
