"""The ``mde`` target: one feed's indicators in the Defender for Endpoint Indicators API.

MDE has no alert-definition entity: the feed's definition (title, description, severity,
recommended action, action, expiry, RBAC groups, application) is stamped on each indicator, and
the **definition id is the title** — ``existing()`` lists the indicators whose title equals it.
Indicators are unique per tenant by value and type, so two feeds (or another tool) that hold the
same value share one indicator, and the last import sets its title. Changing a feed's title
starts a new definition: indicators under the old title stay until deleted.

``send()`` batches through ``indicators/import`` (≤ 500, per-item results):

* an item with ``isFailed`` is **rejected** with its ``failureReason`` — except when the reason
  is the tenant cap (``IndicatorLimitExceeded``): that item is **failed**, because a later run
  can import it once room is made;
* a lost answer is harmless: import upserts by value and type, so re-sending the whole batch
  after a reset or a dropped answer cannot create a duplicate; the retry loop simply sends again;
* a whole-call error after all retries fails the batch with the last error; ``AuthError`` escapes.

``existing()`` leaves out an indicator under the title that carries another tool's ``externalId``
(``client.ours``): it is not ours to count present or to delete in mirror mode.

Deletes go through ``BatchDelete`` (≤ 500 ids a call), which is all or nothing: a 404 if any id is
gone (deleted in the portal meanwhile, or by our own call whose answer was lost). Such a chunk is
**settled**: one listing of the tenant (``MdeClient.held_ids``: 2 calls in the calls lane for a full one,
shared by the chunks after it) tells which ids are still there; those are deleted again, the rest
count as deleted. Deleting the rest one by one would cost a call each in the 100-a-minute lane (500
for a chunk); a single-id chunk needs neither, its 404 says it all. An expired indicator in such a
chunk is not listed either: it counts as deleted and stays, inactive and taking no room.

``headroom()`` counts the indicators the tenant lists — the active ones, which are what the cap
counts — for the dry-run plan (``HasHeadroom`` in ``targets.base``: optional, not part of ``Target``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from typing import TypeVar

from feeds.model import Detection, Indicator, Kind
from importer.errors import AmbiguousWriteError, ApiError, PermanentError
from importer.fields import TITLE
from importer.model import (
    BatchResult,
    DefinitionSpec,
    Headroom,
    InFlight,
    RemoteIndicator,
    ResolvedDefinition,
    Stamp,
)
from importer.targets.base import HeldItem, never
from importer.targets.common import missing_collection
from importer.targets.mde.client import (
    ImportItem,
    MdeClient,
    expiry_epoch,
    indicator_body,
    indicator_stamp,
    ours,
    remote_indicator,
    wire_value,
)
from importer.targets.mde.rules import (
    BATCH_LIMIT,
    CAP_CODE,
    DEFAULT_AUDIENCE,
    MAX_TOP,
    MDE_TYPES,
    TENANT_CAP,
    MdePace,
    check_definition,
)
from importer.transport.connection import ConnectionSettings
from importer.transport.http import open_http
from importer.transport.retry import Retrier
from importer.transport.stats import TransportStats

__all__ = ["MdeTarget", "open_mde_target"]

_log = logging.getLogger(__name__)
T = TypeVar("T")
# How many times a chunk's BatchDelete is settled after a 404 (each a listing and a new delete)
# before it is given up for this run: ids keep vanishing only while someone deletes alongside us.
_SETTLE_ROUNDS = 3


class MdeTarget:
    """The Indicators API behind one authenticated session (see the module docstring)."""

    name = "mde"

    def __init__(
        self,
        client: MdeClient,
        retrier: Retrier,
        stats: TransportStats,
        *,
        bulk: bool = True,
        cap: int = TENANT_CAP,
    ) -> None:
        self._client = client
        self._retrier = retrier
        self._stats = stats
        self._bulk = bulk
        self._cap = cap
        self.max_batch = BATCH_LIMIT if bulk else 1
        self.max_update_batch = self.max_batch  # an update is the same upsert as a create
        self._stamps: dict[str, tuple[DefinitionSpec, Stamp]] = {}  # per definition: see stamp()

    def unsupported(self, indicator: Indicator) -> str | None:
        if indicator.kind not in MDE_TYPES:
            return f"the mde target has no {indicator.kind} indicator type"
        if indicator.detection is not Detection.EQUALS:
            return f"the mde target matches exact values only; this indicator needs {indicator.detection}"
        if indicator.kind is Kind.IPV6 and "%" in indicator.value:
            return "the mde target takes no IPv6 zone (the '%' part of a link-local address)"
        return None

    # --- the definition ------------------------------------------------------------------------------
    async def resolve_definition(self, spec: DefinitionSpec, *, dry_run: bool) -> ResolvedDefinition:
        check_definition(spec)
        # Nothing to create or update remotely: the metadata travels with every indicator (an
        # import updates an existing indicator's metadata too). "found" tells the pipeline there
        # is something to list; "created" that a new title holds nothing yet.
        title = spec[TITLE]
        try:
            held = await self._client.any_titled(title)
        except PermanentError as error:
            raise missing_collection(error, self._client.api_url, "indicators") or error from None
        if held:
            return ResolvedDefinition(title, spec, "found")
        return ResolvedDefinition(title, spec, "planned" if dry_run else "created")

    async def existing(self, definition: ResolvedDefinition) -> AsyncIterator[RemoteIndicator]:
        if not definition.id:
            return
        foreign = 0
        async for page in self._client.titled(definition.id):
            for entity in page:
                if not ours(entity):
                    foreign += 1
                    continue
                remote = remote_indicator(entity)
                if remote is not None:
                    yield remote
        if foreign:
            _log.info(
                "%d indicators titled %r carry another tool's externalId: left to that tool",
                foreign,
                definition.id,
            )

    async def headroom(self) -> Headroom:
        """The tenant's indicators (every title) against the cap: one listing, ≤ 10,000 a page."""
        held = 0
        async for page in self._client.pages():
            held += len(page)
        return Headroom(held, self._cap)

    # --- what is sent, compactly -------------------------------------------------------------------
    def stamp(self, definition: ResolvedDefinition, indicator: Indicator) -> Stamp:
        # A rerun stamps every held indicator. What the stamp covers is the definition's alone
        # (neither the value nor its externalId is in it), so it is taken once per definition
        # from a body like the ones sent; only an indicator's own expiry differs.
        spec = definition.spec
        cached = self._stamps.get(definition.id)
        if cached is None or cached[0] is not spec:
            bare = indicator_body(replace(indicator, expires=None), spec)
            cached = self._stamps[definition.id] = (spec, indicator_stamp(bare))
        if indicator.expires is None:
            return cached[1]
        return cached[1].with_expires(expiry_epoch(indicator.expires))

    async def update(
        self,
        definition: ResolvedDefinition,
        items: Sequence[tuple[Indicator, str]],
        *,
        stopping: Callable[[], bool] = never,
    ) -> BatchResult:
        """Send held indicators again: the import upserts by value and type, so the existing
        indicator takes the new metadata and expiry (and keeps its id)."""
        return await self.send(definition, [indicator for indicator, _ in items], stopping=stopping)

    # --- sending -------------------------------------------------------------------------------------
    async def send(
        self,
        definition: ResolvedDefinition,
        batch: Sequence[Indicator],
        *,
        stopping: Callable[[], bool] = never,
    ) -> BatchResult:
        result = BatchResult()
        if self._bulk:  # the pipeline's batches fit one import call (max_batch)
            await self._import(definition.spec, batch, result)
        else:
            for done, indicator in enumerate(batch):
                if stopping():  # no request starts after a stop: the rest was never posted
                    result.unsent.extend(batch[done:])
                    break
                await self._submit(definition.spec, indicator, result)
        return result

    async def _import(self, spec: DefinitionSpec, part: Sequence[Indicator], result: BatchResult) -> None:
        bodies = [indicator_body(i, spec) for i in part]
        try:
            items = await self._upsert(lambda: self._client.import_indicators(bodies))
        except ApiError as error:  # AuthError is not an ApiError: it escapes, the run must stop
            result.failed.extend((i, str(error)) for i in part)
            return
        self._classify(part, items, result)

    async def _submit(self, spec: DefinitionSpec, indicator: Indicator, result: BatchResult) -> None:
        try:
            entity = await self._upsert(lambda: self._client.submit(indicator_body(indicator, spec)))
        except PermanentError as error:
            if error.status == 400 and error.code != CAP_CODE:
                result.rejected.append((indicator, str(error)))
            else:
                result.failed.append((indicator, str(error)))
            return
        except ApiError as error:
            result.failed.append((indicator, str(error)))
            return
        result.imported.append((indicator, str(entity["id"])))

    async def _upsert(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run an upsert until it is answered. Re-sending after a lost answer is safe as it is:
        the service upserts by value and type, so a write that did land is simply applied again
        (same ids, no duplicates) — no lookup of what arrived is needed, unlike ``ti``."""
        lost = False

        async def attempt() -> T:
            nonlocal lost
            try:
                answer = await call()
            except AmbiguousWriteError:
                lost = True
                raise
            if lost:
                self._stats.lost_writes_recovered += 1
                lost = False
            return answer

        return await self._retrier.call(attempt)

    def _classify(self, part: Sequence[Indicator], items: list[ImportItem], result: BatchResult) -> None:
        """Pair each indicator with its result (in order; by value if the answer is out of step)."""
        # The answer names each item by the value as sent (IPv6 with all 8 segments), not as read.
        sent = [wire_value(indicator).lower() for indicator in part]
        pairs: list[tuple[Indicator, ImportItem | None]] = []
        in_step = len(items) == len(part) and all(
            it.value is None or it.value.lower() == value for value, it in zip(sent, items, strict=True)
        )
        if in_step:
            pairs.extend(zip(part, items, strict=True))
        else:
            _log.warning(
                "the import answer does not follow the request (%d items for %d); matching by value",
                len(items),
                len(part),
            )
            by_value: dict[str, list[ImportItem]] = {}
            for item in items:
                if item.value is not None:
                    by_value.setdefault(item.value.lower(), []).append(item)
            for indicator, value in zip(part, sent, strict=True):
                found = by_value.get(value)
                pairs.append((indicator, found.pop(0) if found else None))
        for indicator, answer in pairs:
            if answer is None:
                result.failed.append((indicator, "the import answer did not mention it"))
            elif not answer.failed:
                result.imported.append((indicator, answer.id or ""))
            elif answer.cap_reached:
                result.failed.append((indicator, answer.reason or CAP_CODE))
            else:
                result.rejected.append((indicator, answer.reason or "refused without a reason"))

    # --- deleting ------------------------------------------------------------------------------------
    async def delete(self, definition: ResolvedDefinition, items: Sequence[HeldItem]) -> list[str]:
        remote_ids = [remote_id for _, _, remote_id in items]  # deleted by id alone
        # Each id once, none empty: BatchDelete answers 400 to a list with an invalid id in it.
        ids = list(dict.fromkeys(i for i in remote_ids if i))
        if "" in remote_ids:
            _log.warning("an indicator without its id cannot be deleted; --reconcile repairs the journal")
        deleted: list[str] = []
        listed: set[str] | None = None  # what the tenant held when last listed, of these ids
        for start in range(0, len(ids), BATCH_LIMIT):
            chunk = ids[start : start + BATCH_LIMIT]
            try:
                listed = await self._delete_chunk(chunk, ids[start:], listed)
            except ApiError as error:
                _log.warning("could not delete %d indicators: %s", len(chunk), error)
                continue
            deleted.extend(chunk)
        return deleted

    async def _delete_chunk(
        self, chunk: list[str], rest: list[str], listed: set[str] | None
    ) -> set[str] | None:
        """Delete ``chunk`` until none of it is left (see the module docstring); the listing taken
        meanwhile, if any, for the chunks after it (``rest``: this chunk and those)."""
        todo = chunk if listed is None else [i for i in chunk if i in listed]
        for _ in range(_SETTLE_ROUNDS):
            if not todo:  # never an empty BatchDelete (a 400): nothing of the chunk is left
                return listed
            try:
                # A lost answer is retried as it is; a retry that finds its ids gone is a 404.
                await self._retrier.call(partial(self._client.batch_delete, todo))
                return listed
            except PermanentError as error:
                if error.status != 404:
                    raise
                last = error
            if len(todo) == 1:  # the 404 names the one id sent: it is gone
                return listed
            listed = await self._client.held_ids(rest)
            todo = [i for i in todo if i in listed]
        raise last


@asynccontextmanager
async def open_mde_target(
    settings: ConnectionSettings,
    stats: TransportStats,
    *,
    in_flight: InFlight | None = None,
    bulk: bool = True,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    pace: MdePace | None = None,
    cap: int | None = None,
    page_size: int = MAX_TOP,
) -> AsyncIterator[MdeTarget]:
    """The mde target on one session; ``pace`` defaults to the documented limits, its windows
    scaled by ``settings.window_scale`` (a scaled emulator), evenly spaced at
    ``settings.rate_per_minute`` when set."""
    pace = (pace or MdePace(scale=settings.window_scale)).capped(settings.rate_per_minute)
    async with open_http(
        settings, stats, default_audience=DEFAULT_AUDIENCE, in_flight=in_flight, sleep=sleep, clock=clock
    ) as http:
        client = MdeClient(http, settings.api_url, pace=pace, page_size=page_size, sleep=sleep, clock=clock)
        cap = cap if cap is not None else int(settings.option("cap") or TENANT_CAP)  # the --mde-cap option
        yield MdeTarget(client, http.retrier, stats, bulk=bulk, cap=cap)
