"""The ``sentinel`` target: one feed's indicators as STIX 2.1 objects in a Microsoft Sentinel workspace.

Sentinel has no alert-definition entity: a feed is one **identity** (its source of record, uploaded
once a run by ``resolve_definition``; the definition's id is the identity's), and every indicator
names it in ``created_by_ref`` and carries the feed's name as a label. Ids are deterministic
(``stix``): one value is one object in the workspace's source system, so a rerun, a retried
request or a lost answer updates that object and never makes a second. As on ``mde``, feeds share
values (``unique_values``): the journal keeps which feed owns each, and mirror mode takes back
only what no other feed lists.

``send()`` uploads ≤ 100 objects a request (``update()`` the same, with a later ``modified``):

* a 200 with ``errors`` rejects the objects it names with the service's words; the rest are imported;
* a lost answer is harmless: the same objects are sent again (same ids; an equal ``modified`` is
  ignored by the service, a later one replaces);
* a 404 is an unknown workspace: a ``ConfigError`` naming it (exit 2); a 400 refuses the request
  whole (its objects rejected with the message); exhausted retries fail the batch.

``delete()`` revokes (the API has no delete): each item is uploaded again with ``revoked: true`` and
a later ``modified``; revocation is permanent. ``existing()`` reads the workspace back through
ARM's ``queryIndicators`` when ``subscription_id``, ``resource_group`` and ``workspace_name`` are
configured; without them it lists nothing, and the journal is the only record (said once, at ``-v``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from feeds.model import Detection, Indicator, Kind
from importer.errors import AmbiguousWriteError, ApiError, ConfigError, PermanentError
from importer.fields import DESCRIPTION
from importer.model import BatchResult, DefinitionSpec, InFlight, RemoteIndicator, ResolvedDefinition, Stamp
from importer.targets.base import HeldItem, RevocationCounts, never
from importer.targets.sentinel.client import ArmWorkspace, SentinelClient, refusals_of
from importer.targets.sentinel.fields import MARKING, TLP_MARKINGS
from importer.targets.sentinel.rules import (
    BATCH_LIMIT,
    DEFAULT_ARM_URL,
    DEFAULT_AUDIENCE,
    DEFAULT_SOURCE,
    PATTERN_PATHS,
    SentinelPace,
    check_definition,
)
from importer.targets.sentinel.stix import (
    FeedScope,
    identity_id,
    identity_object,
    indicator_object,
    remote_of_listed,
    revoked_object,
    stamp_of_indicator,
)
from importer.transport.connection import ConnectionSettings
from importer.transport.http import open_http
from importer.transport.retry import Retrier
from importer.transport.stats import TransportStats

__all__ = ["SentinelTarget", "open_sentinel_target"]

_log = logging.getLogger(__name__)
_MS = timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SentinelTarget:
    """A Sentinel workspace behind one authenticated session (see the module docstring)."""

    name = "sentinel"

    def __init__(
        self,
        client: SentinelClient,
        retrier: Retrier,
        stats: TransportStats,
        *,
        bulk: bool = True,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._retrier = retrier
        self._stats = stats
        self._wall = wall
        self.max_batch = BATCH_LIMIT if bulk else 1
        self.max_update_batch = self.max_batch  # an update is the same upload, a later version
        self._scopes: dict[str, tuple[DefinitionSpec, FeedScope]] = {}
        self._last_modified = datetime.min.replace(tzinfo=UTC)
        self._said_no_listing = False
        self._identities: dict[str, asyncio.Future[None]] = {}  # by definition id: uploaded (or going)
        self._revocation_counts: RevocationCounts | None = None  # the journal's (none: all zero)

    def use_revocation_counts(self, counts: RevocationCounts) -> None:
        """Give a value revoked before a new id when it comes back (``targets.base.RevokesForGood``)."""
        self._revocation_counts = counts

    async def _revoked(self, part: Sequence[Indicator]) -> Mapping[tuple[Kind, str], int]:
        counts = self._revocation_counts
        if counts is None:
            return {}
        return await asyncio.to_thread(counts, [(i.kind, i.value) for i in part])

    def unsupported(self, indicator: Indicator) -> str | None:
        if indicator.kind not in PATTERN_PATHS:
            return f"the sentinel target has no pattern for {indicator.kind} indicators"
        if indicator.detection is not Detection.EQUALS:
            return (
                f"the sentinel target matches exact values only; this indicator needs {indicator.detection}"
            )
        return None

    # --- the feed's identity -------------------------------------------------------------------------
    def scope(self, definition: ResolvedDefinition) -> FeedScope:
        """What every object of the definition's feed carries (built once per definition and spec)."""
        spec = definition.spec
        cached = self._scopes.get(definition.id)
        if cached is None or cached[0] is not spec:
            tlp = spec[MARKING]
            scope = FeedScope(
                self._client.workspace_id, self._client.source_system, spec.name, definition.id,
                (TLP_MARKINGS[tlp],) if tlp else (), spec.expires_at,
            )  # fmt: skip
            cached = self._scopes[definition.id] = (spec, scope)
        return cached[1]

    async def resolve_definition(self, spec: DefinitionSpec, *, dry_run: bool) -> ResolvedDefinition:
        """The feed's identity id: known without asking (nothing to look up or create here). The
        identity is uploaded before the first object that names it (``_identity``), so a run with
        nothing to send sends nothing."""
        check_definition(spec)
        client = self._client
        return ResolvedDefinition(
            identity_id(client.workspace_id, client.source_system, spec.name), spec, "found"
        )

    async def _identity(self, definition: ResolvedDefinition) -> None:
        """Upload the feed's identity once in this run, before its first indicator (every worker
        waits for the one upload); a failed upload is tried again by the next batch."""
        task = self._identities.get(definition.id)
        if task is None:
            task = self._identities[definition.id] = asyncio.ensure_future(self._upload_identity(definition))
            # Its waiters see its error; should they all be cancelled first (a stop), it is not lost noise.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            await asyncio.shield(task)
        except Exception:
            if self._identities.get(definition.id) is task:
                del self._identities[definition.id]
            raise

    async def _upload_identity(self, definition: ResolvedDefinition) -> None:
        spec = definition.spec
        identity = identity_object(self.scope(definition), spec[DESCRIPTION], self._now())
        try:
            refused = await self._upload([identity])
        except PermanentError as error:  # 403: the app may not write to the workspace
            raise ConfigError(
                f"the Sentinel API refused the identity of feed {spec.name!r}: {error}"
            ) from None
        if refused:
            raise ConfigError(f"the Sentinel API refused the identity of feed {spec.name!r}: {refused[0]}")

    def _workspace_unknown(self, error: PermanentError) -> ConfigError | None:
        """A 404 names no workspace the app can write to: a configuration error (exit 2), else None."""
        if error.status != 404:
            return None
        return ConfigError(
            f"the Sentinel API does not know workspace {self._client.workspace_id} (HTTP 404): check "
            "--workspace-id (TI_WORKSPACE_ID, or workspace_id in the config file's [target] table) and "
            "the app's role on it"
        )

    # --- what the workspace holds --------------------------------------------------------------------
    def can_list(self) -> bool:
        """Whether the workspace can be read back (``targets.base.MayBeUnlisted``): ARM configured."""
        return self._client.arm is not None

    async def existing(self, definition: ResolvedDefinition) -> AsyncIterator[RemoteIndicator]:
        if self._client.arm is None:
            if not self._said_no_listing:
                self._said_no_listing = True
                _log.info(
                    "no subscription_id, resource_group and workspace_name in [target]: the workspace cannot "
                    "be read back, so the journal is the only record of what it holds"
                )
            return
        scope = self.scope(definition)
        async for page in self._client.indicators():
            for entry in page:
                remote = remote_of_listed(entry, scope)
                if remote is not None:
                    yield remote

    # --- what is sent --------------------------------------------------------------------------------
    def stamp(self, definition: ResolvedDefinition, indicator: Indicator) -> Stamp:
        return stamp_of_indicator(indicator, self.scope(definition))

    def _now(self) -> datetime:
        """The time of an upload: to the millisecond, and later than any this target sent before,
        so each version it sends supersedes the last (the service ignores an equal ``modified``)."""
        now = _EPOCH + timedelta(milliseconds=int(self._wall() * 1000))
        self._last_modified = max(now, self._last_modified + _MS)
        return self._last_modified

    async def send(
        self,
        definition: ResolvedDefinition,
        batch: Sequence[Indicator],
        *,
        stopping: Callable[[], bool] = never,
    ) -> BatchResult:
        result = BatchResult()
        scope = self.scope(definition)
        try:
            await self._identity(definition)
        except ApiError as error:  # its indicators would name an identity the workspace lacks
            result.failed.extend((i, f"the feed's identity could not be uploaded: {error}") for i in batch)
            return result
        for start in range(0, len(batch), self.max_batch):
            part = batch[start : start + self.max_batch]
            if start and stopping():  # no request starts after a stop
                result.unsent.extend(batch[start:])
                break
            revoked = await self._revoked(part)
            now = self._now()
            objects = [indicator_object(i, scope, now, revoked.get((i.kind, i.value), 0)) for i in part]
            await self._send_part(part, objects, result)
        return result

    async def update(
        self,
        definition: ResolvedDefinition,
        items: Sequence[tuple[Indicator, str]],
        *,
        stopping: Callable[[], bool] = never,
    ) -> BatchResult:
        """Upload held indicators again: the same ids with a later ``modified`` are their new version."""
        return await self.send(definition, [indicator for indicator, _ in items], stopping=stopping)

    async def _send_part(
        self, part: Sequence[Indicator], objects: list[dict[str, Any]], result: BatchResult
    ) -> None:
        try:
            refused = await self._upload(objects)
        except ApiError as error:  # AuthError is not an ApiError: it escapes, the run must stop
            result.failed.extend((i, str(error)) for i in part)
            return
        for index, (indicator, body) in enumerate(zip(part, objects, strict=True)):
            if index in refused:
                result.rejected.append((indicator, refused[index]))
            else:
                result.imported.append((indicator, body["id"]))

    async def _upload(self, objects: list[dict[str, Any]]) -> dict[int, str]:
        """Upload until answered: the objects refused, by index. A 400 refuses them all (each with
        its own words when the answer names it); a 404 is a ``ConfigError``; other refusals raise.

        Sending again after a lost answer is safe as it is: the ids are deterministic, so a request
        that did land is applied again (the same version: ignored)."""
        try:
            return await self._upload_retried(objects)
        except PermanentError as error:
            if (unknown := self._workspace_unknown(error)) is not None:
                raise unknown from None
            if error.status != 400:
                raise
            named = refusals_of(error.body, len(objects))
            return {index: named.get(index, str(error)) for index in range(len(objects))}

    async def _upload_retried(self, objects: list[dict[str, Any]]) -> dict[int, str]:
        lost = False

        async def attempt() -> dict[int, str]:
            nonlocal lost
            try:
                refused = await self._client.upload(objects)
            except AmbiguousWriteError:
                lost = True
                raise
            if lost:
                self._stats.lost_writes_recovered += 1
                lost = False
            return refused

        return await self._retrier.call(attempt)

    # --- revoking ------------------------------------------------------------------------------------
    async def delete(self, definition: ResolvedDefinition, items: Sequence[HeldItem]) -> list[str]:
        """Revoke the items (a later version with ``revoked: true``); the ids revoked. A chunk that
        cannot be uploaded, or an object refused, is left for a later run (logged)."""
        scope = self.scope(definition)
        revoked: list[str] = []
        try:
            if items:
                await self._identity(definition)
        except ApiError as error:
            _log.warning("could not revoke %d indicators: the feed's identity: %s", len(items), error)
            return revoked
        for start in range(0, len(items), BATCH_LIMIT):
            chunk = items[start : start + BATCH_LIMIT]
            now = self._now()
            objects = [revoked_object(remote_id, kind, value, scope, now) for kind, value, remote_id in chunk]
            try:
                refused = await self._upload(objects)
            except ApiError as error:
                _log.warning("could not revoke %d indicators: %s", len(chunk), error)
                continue
            for index, (_, _, remote_id) in enumerate(chunk):
                if index in refused:
                    _log.warning("could not revoke indicator %s: %s", remote_id, refused[index])
                else:
                    revoked.append(remote_id)
        return revoked


def _arm_of(settings: ConnectionSettings) -> ArmWorkspace | None:
    """The ARM coordinates of the read-back: all three of subscription, group and name, or none."""
    keys = ("subscription_id", "resource_group", "workspace_name")
    given = {key: settings.option(key) for key in keys}
    if not any(given.values()):
        return None
    missing = [key for key, value in given.items() if not value]
    if missing:
        raise ConfigError(
            f"the sentinel read-back needs subscription_id, resource_group and workspace_name in the config "
            f"file's [target] table; {', '.join(missing)} missing"
        )
    return ArmWorkspace(settings.option("arm_url") or DEFAULT_ARM_URL, *(str(given[key]) for key in keys))


@asynccontextmanager
async def open_sentinel_target(
    settings: ConnectionSettings,
    stats: TransportStats,
    *,
    in_flight: InFlight | None = None,
    bulk: bool = True,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    pace: SentinelPace | None = None,
    wall: Callable[[], float] = time.time,
) -> AsyncIterator[SentinelTarget]:
    """The sentinel target on one session. ARM's origin, when the read-back is configured, is one of
    the API's: the token goes there too (``ConnectionSettings.extra_api_urls``), and nowhere else."""
    workspace_id = settings.option("workspace_id")
    if not workspace_id:
        raise ConfigError(
            "the sentinel target needs a workspace id: give --workspace-id or set TI_WORKSPACE_ID"
        )
    arm = _arm_of(settings)
    if arm is not None:
        settings = replace(settings, extra_api_urls=(*settings.extra_api_urls, arm.arm_url))
    pace = pace or SentinelPace(scale=settings.window_scale)
    async with open_http(
        settings, stats, default_audience=DEFAULT_AUDIENCE, in_flight=in_flight, sleep=sleep, clock=clock
    ) as http:
        client = SentinelClient(
            http, settings.api_url, workspace_id, settings.option("source_system") or DEFAULT_SOURCE,
            arm=arm, pace=pace, sleep=sleep, clock=clock,
        )  # fmt: skip
        yield SentinelTarget(client, http.retrier, stats, bulk=bulk, wall=wall)
