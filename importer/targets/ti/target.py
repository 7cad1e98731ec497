"""The ``ti`` target: one feed's alert definition and its IOCs in the legacy custom TI API.

``send()`` is where the reliability lives:

* **retry** — each batch runs in a bounded tenacity loop (``importer.transport.retry``);
* **lost answers** — a write whose answer never came (``AmbiguousWriteError``) may have been
  applied: before sending again we look up which of its indicators the definition now holds
  (per value with ``$filter`` for a few, by paging the definition when that is cheaper), count
  them imported, and send only the rest;
* **bisection** — a BulkUpload is atomic, so a 400 means "some record is bad": the batch is split
  in halves until each bad record is alone and ``rejected`` with the server's message, and every
  good record is imported;
* a 507 (quota) fails the batch with the reason (a quota is not a validation error: no bisecting),
  exhausted retries fail it with the last error; ``AuthError`` escapes (the run must stop).

``resolve_definition`` raises ``ConfigError`` only when the server refuses the definition as
configured (400/403/404); a full definitions quota raises ``QuotaError`` and exhausted retries the
last ``RetryableError``, so the caller counts that feed's indicators failed (exit 1), not exit 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from feeds.model import Detection, Indicator
from importer.errors import (
    AmbiguousWriteError,
    ApiError,
    ConfigError,
    PermanentError,
    QuotaError,
    RetryableError,
)
from importer.fields import DETECTION_FUNCTION
from importer.model import BatchResult, DefinitionSpec, InFlight, RemoteIndicator, ResolvedDefinition, Stamp
from importer.targets.base import HeldItem, never
from importer.targets.common import missing_collection, value_key
from importer.targets.ti.client import (
    TiClient,
    definition_body,
    definition_changes,
    ioc_bodies,
    ioc_body,
    ioc_changes,
    remote_indicator,
    sent_stamp,
)
from importer.targets.ti.lookup import stored_of
from importer.targets.ti.rules import BULK_LIMIT, DEFAULT_AUDIENCE, TI_TYPES, UNSUPPORTED_KINDS
from importer.transport.connection import ConnectionSettings
from importer.transport.http import open_http
from importer.transport.retry import Retrier
from importer.transport.stats import TransportStats

__all__ = ["TiTarget", "open_ti_target"]

_log = logging.getLogger(__name__)
_DELETE_CONCURRENCY = 8
# The API has no bulk update: an update batch is PATCHed one IOC per request, so it is kept as
# small as a single-mode batch (bookkeeping per 16 requests, and a stop waits for at most 16).
_UPDATE_BATCH = 16
# Single mode takes indicators a few per batch rather than one, so the pipeline's bookkeeping (a
# journal entry, a progress step) is per 16, not per request. A batch is posted in order, one
# request at a time, each holding one of ``workers`` slots shared by the whole target; a slot left
# free by a worker without a batch (the end of a run, a small feed) carries the batch's last
# indicators at once, so ``workers`` requests stay in flight while there is anything to post.
_SINGLE_BATCH = 16


class TiTarget:
    """The legacy TI API behind one authenticated session (see the module docstring)."""

    name = "ti"

    def __init__(
        self,
        client: TiClient,
        retrier: Retrier,
        stats: TransportStats,
        *,
        bulk: bool = True,
        in_flight: InFlight | None = None,
    ) -> None:
        self._client = client
        self._retrier = retrier
        self._stats = stats
        self._bulk = bulk
        self.max_batch = BULK_LIMIT if bulk else _SINGLE_BATCH
        self.max_update_batch = _UPDATE_BATCH
        self._stamps: dict[tuple[str, Detection], Stamp] = {}
        self._slots = asyncio.Semaphore((in_flight or InFlight()).requests)  # single mode: requests in flight

    def unsupported(self, indicator: Indicator) -> str | None:
        if indicator.kind not in TI_TYPES:
            fallback = f"the ti target has no {indicator.kind} indicator type"
            return UNSUPPORTED_KINDS.get(indicator.kind, fallback)
        return None

    # --- the alert definition --------------------------------------------------------------------
    async def resolve_definition(self, spec: DefinitionSpec, *, dry_run: bool) -> ResolvedDefinition:
        wanted = definition_body(spec)
        try:
            found = await self._client.find_definitions(spec.name)
        except PermanentError as error:
            raise missing_collection(error, self._client.api_url, "AlertDefinitions") or error from None
        if found:
            current = found[0]
            extras = tuple(str(d["Id"]) for d in found[1:])
            if extras:
                _log.warning(
                    "%d alert definitions are named %r: Id %s is kept (the oldest), Id %s %s extra; "
                    "rerun with --reconcile to merge %s into it",
                    len(found), spec.name, current["Id"], ", ".join(extras),
                    "is" if len(extras) == 1 else "are", "it" if len(extras) == 1 else "them",
                )  # fmt: skip
            changes = definition_changes(current, wanted)
            definition_id = str(current["Id"])
            if not changes:
                return ResolvedDefinition(definition_id, spec, "found", extras)
            if dry_run:  # it exists and holds what it holds: only its settings would change
                return ResolvedDefinition(definition_id, spec, "would_update", extras)
            await self._definition_call(lambda: self._client.patch_definition(definition_id, changes), spec)
            return ResolvedDefinition(definition_id, spec, "updated", extras)
        if dry_run:
            return ResolvedDefinition("", spec, "planned")
        created = await self._create_definition(spec, wanted)
        return ResolvedDefinition(str(created["Id"]), spec, "created")

    async def _create_definition(self, spec: DefinitionSpec, wanted: dict[str, Any]) -> dict[str, Any]:
        lost = False

        async def attempt() -> dict[str, Any]:
            nonlocal lost
            if lost:  # the last POST may have created it: never create a second one
                again = await self._client.find_definitions(spec.name)
                if again:
                    self._stats.lost_writes_recovered += 1
                    return again[0]
                lost = False
            try:
                return await self._client.create_definition(wanted)
            except AmbiguousWriteError:
                lost = True
                raise

        return await self._definition_call(attempt, spec)

    async def _definition_call(self, fn: Any, spec: DefinitionSpec) -> dict[str, Any]:
        """Create or update a definition; only the server refusing it *as configured* is a ConfigError.

        A full definitions quota (507) stays a ``QuotaError`` and exhausted retries stay the last
        ``RetryableError``: the configuration is fine, so that feed's indicators fail (exit 1) and
        a rerun tries again.
        """
        try:
            result: dict[str, Any] = await self._retrier.call(fn)
        except PermanentError as error:
            # The server refused the definition as configured: that is a configuration problem.
            raise ConfigError(f"the TI API refused the alert definition {spec.name!r}: {error}") from None
        except QuotaError as error:
            raise QuotaError(
                f"could not create the alert definition {spec.name!r}: {error}",
                status=error.status,
                code=error.code,
            ) from None
        return result

    # --- what the definition holds ---------------------------------------------------------------
    async def existing(self, definition: ResolvedDefinition) -> AsyncIterator[RemoteIndicator]:
        if not definition.id:
            return  # a planned (dry-run) definition holds nothing yet
        async for page in self._client.iocs_of(definition.id):
            for entity in page:
                remote = remote_indicator(entity)
                if remote is not None:
                    yield remote

    # --- what is sent, compactly -----------------------------------------------------------------
    def stamp(self, definition: ResolvedDefinition, indicator: Indicator) -> Stamp:
        # A rerun stamps every held IOC: those without their own expiry share one stamp per
        # definition and detection function, computed once.
        if indicator.expires is None:
            key = (definition.id, indicator.detection)
            shared = self._stamps.get(key)
            if shared is None:
                shared = self._stamps[key] = self._stamp(definition, indicator)
            return shared
        return self._stamp(definition, indicator)

    def _stamp(self, definition: ResolvedDefinition, indicator: Indicator) -> Stamp:
        spec = definition.spec
        return sent_stamp(indicator, detection=spec[DETECTION_FUNCTION], expires_at=spec.expires_at)

    def _body(self, definition: ResolvedDefinition, indicator: Indicator) -> dict[str, Any]:
        spec = definition.spec
        return ioc_body(
            indicator, definition.id, detection=spec[DETECTION_FUNCTION], expires_at=spec.expires_at
        )

    # --- updating what the definition holds --------------------------------------------------------
    async def update(
        self,
        definition: ResolvedDefinition,
        items: Sequence[tuple[Indicator, str]],
        *,
        stopping: Callable[[], bool] = never,
    ) -> BatchResult:
        """PATCH each held IOC (by its remote id) to what ``send`` would create now: its detection
        function, enabled flag and expiry. A 404 (deleted meanwhile) is failed, not rejected: the
        journal then lists the definition on the next ``--reconcile``, and the rerun creates it."""
        result = BatchResult()
        for position, (indicator, remote_id) in enumerate(items):  # one request at a time
            if stopping():  # no request starts after a stop
                result.unsent.extend(i for i, _ in items[position:])
                break
            changes = ioc_changes(self._body(definition, indicator))
            try:
                await self._retrier.call(lambda: self._client.patch_ioc(remote_id, changes))  # noqa: B023 -- awaited here
            except PermanentError as error:
                bucket = result.rejected if error.status == 400 else result.failed
                bucket.append((indicator, str(error)))
            except ApiError as error:
                result.failed.append((indicator, str(error)))
            else:
                result.imported.append((indicator, remote_id))
        return result

    # --- sending -----------------------------------------------------------------------------------
    async def send(
        self,
        definition: ResolvedDefinition,
        batch: Sequence[Indicator],
        *,
        stopping: Callable[[], bool] = never,
    ) -> BatchResult:
        result = BatchResult()
        if self._bulk:  # the pipeline's batches fit one upload (max_batch)
            await self._send_part(definition, list(batch), result)
        else:
            try:
                await self._send_singles(definition, list(batch), result, stopping)
            except BaseExceptionGroup as failed:
                # Every outcome but an AuthError is classified into ``result``: the caller sees that
                # error itself, as it would from a bulk upload.
                raise failed.exceptions[0] from None
        return result

    async def _send_singles(
        self,
        definition: ResolvedDefinition,
        pending: list[Indicator],
        result: BatchResult,
        stopping: Callable[[], bool],
    ) -> None:
        """Post ``pending`` one indicator per request, in order, on this sender's slot (one of the
        ``workers`` slots); whenever another slot is free (a worker without a batch: the end of a
        run, a small feed), the last indicators go out at once beside it. A TaskGroup: if one post
        raises, the others are cancelled and awaited, never left running unaccounted for.

        Once ``stopping()`` is true no post starts: the rest of the batch is ``unsent``. It is
        asked after every await (the slot, the last post); between the question and the post
        below nothing yields, so a stop cannot slip in between."""
        async with self._slots, asyncio.TaskGroup() as group:
            while pending and not stopping():
                while len(pending) > 1 and not self._slots.locked():
                    await self._slots.acquire()  # free, so this does not wait (nor yield)
                    group.create_task(self._post_holding(definition, pending.pop(), result, stopping))
                await self._send_part(definition, [pending.pop(0)], result)
            result.unsent.extend(pending)
            pending.clear()

    async def _post_holding(
        self,
        definition: ResolvedDefinition,
        indicator: Indicator,
        result: BatchResult,
        stopping: Callable[[], bool],
    ) -> None:
        """Post one indicator on a slot already taken for it, then give the slot back; unposted
        (``unsent``) if the run stopped before this task got its first turn."""
        try:
            if stopping():
                result.unsent.append(indicator)
            else:
                await self._send_part(definition, [indicator], result)
        finally:
            self._slots.release()

    async def _send_part(
        self, definition: ResolvedDefinition, part: list[Indicator], result: BatchResult
    ) -> None:
        """Deliver ``part``; on a validation error bisect it; classify every indicator into ``result``."""
        pending = list(part)
        try:
            await self._deliver(definition, pending, result)
        except PermanentError as error:
            if error.status == 400 and len(pending) > 1:
                middle = len(pending) // 2
                _log.debug("bulk upload of %d refused (%s): bisecting", len(pending), error)
                await self._send_part(definition, pending[:middle], result)
                await self._send_part(definition, pending[middle:], result)
            elif error.status == 400:
                result.rejected.extend((i, str(error)) for i in pending)
            else:
                result.failed.extend((i, str(error)) for i in pending)
        except QuotaError as error:
            result.failed.extend((i, str(error)) for i in pending)
        except RetryableError as error:
            if isinstance(error, AmbiguousWriteError) and pending:
                # Out of retries right after a lost answer: what did arrive is imported, not failed.
                # If the check itself fails, they are reported failed; a rerun will see them.
                with contextlib.suppress(ApiError):
                    await self._recover(definition, pending, result)
            result.failed.extend((i, str(error)) for i in pending)
        except ApiError as error:
            result.failed.extend((i, str(error)) for i in pending)

    async def _deliver(
        self, definition: ResolvedDefinition, pending: list[Indicator], result: BatchResult
    ) -> None:
        """Send ``pending`` until done; after a lost answer, first drop what already arrived.

        ``pending`` shrinks as indicators land in ``result.imported``; what it holds when an error
        escapes is what remains to classify.
        """
        lost = False

        async def attempt() -> None:
            nonlocal lost
            if lost:
                try:
                    await self._recover(definition, pending, result)
                except (PermanentError, QuotaError) as error:
                    # Not the batch's fault: it must not be bisected or rejected for this.
                    raise ApiError(f"could not check what a lost answer had stored: {error}") from None
                lost = False
                if not pending:
                    return
            try:
                ids = await self._write(definition, pending)
            except AmbiguousWriteError:
                lost = True
                raise
            result.imported.extend(zip(pending, ids, strict=True))
            pending.clear()

        await self._retrier.call(attempt)

    async def _write(self, definition: ResolvedDefinition, pending: list[Indicator]) -> list[str]:
        spec = definition.spec
        detection, expires_at = spec[DETECTION_FUNCTION], spec.expires_at  # once a batch, not per indicator
        bodies = ioc_bodies(pending, definition.id, detection=detection, expires_at=expires_at)
        if self._bulk:
            return await self._client.bulk_create_iocs(bodies)
        return [await self._client.create_ioc(bodies[0])]

    async def _recover(
        self, definition: ResolvedDefinition, pending: list[Indicator], result: BatchResult
    ) -> None:
        """Move the indicators of ``pending`` that the definition already holds into ``imported``."""
        stored = await stored_of(self._client, definition.id, pending)
        self._stats.lost_writes_recovered += 1
        remaining: list[Indicator] = []
        for indicator in pending:
            remote_id = stored.get(value_key(TI_TYPES[indicator.kind], indicator.value))
            if remote_id is None:
                remaining.append(indicator)
            else:
                result.imported.append((indicator, remote_id))
        _log.debug("lost answer: %d of %d already stored", len(pending) - len(remaining), len(pending))
        pending[:] = remaining

    # --- merging a duplicate definition -------------------------------------------------------------
    async def merge(self, definition: ResolvedDefinition, extra_id: str) -> int:
        """Fold the extra definition ``extra_id`` (same name) into ``definition``: its IOCs that
        ``definition`` lacks are created there, then the extra definition is deleted with all its
        IOCs (the API deletes them together). Returns how many IOCs moved; raises ``ApiError`` if
        any could not be moved, before anything is deleted."""
        kept = {value_key(TI_TYPES[r.kind], r.value) async for r in self.existing(definition)}
        extra = ResolvedDefinition(extra_id, definition.spec, "found")
        moving = [
            Indicator(remote.kind, remote.value, f"alert definition {extra_id}")
            async for remote in self.existing(extra)
            if value_key(TI_TYPES[remote.kind], remote.value) not in kept
        ]
        for start in range(0, len(moving), self.max_batch):
            result = await self.send(definition, moving[start : start + self.max_batch])
            if result.failed or result.rejected:
                problem = (result.failed or result.rejected)[0][1]
                raise ApiError(f"could not move the IOCs of alert definition {extra_id}: {problem}")
        try:
            await self._retrier.call(lambda: self._client.delete_definition(extra_id))
        except PermanentError as error:
            if error.status != 404:
                raise
        return len(moving)

    # --- deleting ----------------------------------------------------------------------------------
    async def delete(self, definition: ResolvedDefinition, items: Sequence[HeldItem]) -> list[str]:
        remote_ids = [remote_id for _, _, remote_id in items]  # an IOC is deleted by its id alone
        gate = asyncio.Semaphore(_DELETE_CONCURRENCY)
        deleted: list[str] = []

        async def delete_one(remote_id: str) -> None:
            async with gate:
                try:
                    await self._retrier.call(lambda: self._client.delete_ioc(remote_id))
                except PermanentError as error:
                    if error.status != 404:  # 404: already gone (perhaps by our own lost DELETE)
                        _log.warning("could not delete indicator %s: %s", remote_id, error)
                        return
                except (QuotaError, RetryableError) as error:
                    _log.warning("could not delete indicator %s: %s", remote_id, error)
                    return
            deleted.append(remote_id)

        await asyncio.gather(*(delete_one(i) for i in remote_ids))
        return deleted


@asynccontextmanager
async def open_ti_target(
    settings: ConnectionSettings,
    stats: TransportStats,
    *,
    in_flight: InFlight | None = None,
    bulk: bool = True,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[TiTarget]:
    """The ti target on one session, ready until the block ends (the session is closed on exit)."""
    async with open_http(
        settings, stats, default_audience=DEFAULT_AUDIENCE, in_flight=in_flight, sleep=sleep, clock=clock
    ) as http:
        yield TiTarget(TiClient(http, settings.api_url), http.retrier, stats, bulk=bulk, in_flight=in_flight)
