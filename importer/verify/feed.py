"""One feed verified: resolve its definition without creating it, stage the three views, count the classes.

The order matters. The target's listing is read to its end before anything is judged: a listing
that breaks off (an API error, a lost connection, the auth failing) is an error for the feed,
never a long list of "absent". The feed is read as ``run`` reads it (the same job, the feed's policy, the
target's ``unsupported`` and ``stamp``); on a target with one indicator per value in the tenant
(``mde``) a value another feed's definition owns is that feed's to verify, so it is left out of
this feed's journal and feed views, as the run leaves it unsent.

With ``--repair`` the journal is corrected for the repair run that follows (``correct``): an
absent key is forgotten (so the run sends it again), and a held key whose listed stamp the journal
does not have takes that stamp (so ``pipeline.freshness`` re-sends it if today's feed differs,
and the journal says what the target holds if not).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

from feeds.model import FeedError, Indicator, Kind, Record
from importer.errors import ApiError, AuthError, ConfigError
from importer.model import Held, RemoteIndicator, ResolvedDefinition
from importer.pipeline.freshness import Freshness
from importer.pipeline.job import FeedJob
from importer.policy import Policy
from importer.state.journal import Acked, Journal
from importer.targets.base import Target
from importer.verify.compare import Comparison, Wanted, classify
from importer.verify.report import FeedVerdict

__all__ = ["verify_feed"]

_CHUNK = 1000  # keys per journal question, records per read
_EVERY_RUN = -1  # no run has this id: ``Journal.stale`` of it is every row of the definition


async def verify_feed(target: Target, journal: Journal | None, job: FeedJob, *, repair: bool) -> FeedVerdict:
    """Compare the journal, the target and today's feed for ``job``; with ``repair``, correct the journal.

    An ``AuthError`` is raised (the caller stops); other failures are the feed's ``error``."""
    verdict = FeedVerdict(job.name)
    comparison = Comparison()
    try:
        definition = await target.resolve_definition(job.definition, dry_run=True)
        verdict.definition_id, verdict.definition_outcome = definition.id, definition.outcome
        journal_id = _journal_id(journal, job.name, definition)
        if definition.outcome != "planned":  # a definition that does not exist holds nothing
            async for item in target.existing(definition):
                comparison.add_listed(item)
        comparison.end_listing()
        if journal is not None and journal_id:
            await asyncio.to_thread(comparison.add_sent, _journal_rows(journal, journal_id))
        await _read_feed(target, job, definition, comparison, journal=journal, journal_id=journal_id)
        verdict.journal, verdict.listed, verdict.feed = (
            comparison.counts["sent"], comparison.counts["listed"], comparison.counts["wanted"]
        )  # fmt: skip
        freshness = Freshness.of(job.definition)
        for row in comparison.rows():
            verdict.counts[classify(row, freshness)] += 1
        if repair and journal is not None and journal_id:
            verdict.corrected = await asyncio.to_thread(_correct, journal, journal_id, comparison, freshness)
    except AuthError:
        raise
    except (ConfigError, FeedError) as exc:
        verdict.error, verdict.config_error = str(exc), True
    except ApiError as exc:
        verdict.error = f"not judged: the target could not be read to the end: {exc}"
    finally:
        comparison.close()
    return verdict


def _journal_id(journal: Journal | None, name: str, definition: ResolvedDefinition) -> str:
    """The definition the journal keeps the feed's rows under: the one it remembers for the feed
    (the target may since hold another under that name: then all of them are absent), else the
    resolved one."""
    if journal is None:
        return ""
    return journal.definition_id(name) or definition.id


def _journal_rows(journal: Journal, definition_id: str) -> Iterator[tuple[Kind, str, Held]]:
    """What the journal says was sent under the definition, with stamps, a page at a time; rows of
    values another definition owns (``Held.elsewhere``) were never sent by this one."""
    keys = ((kind, value) for kind, value, _ in journal.stale(definition_id, _EVERY_RUN))
    while page := list(itertools.islice(keys, _CHUNK)):
        held = journal.held(definition_id, page)
        for key in page:
            found = held.get(key)
            if found is not None and not found.elsewhere:
                yield key[0], key[1], found


async def _read_feed(
    target: Target,
    job: FeedJob,
    definition: ResolvedDefinition,
    comparison: Comparison,
    *,
    journal: Journal | None,
    journal_id: str,
) -> None:
    """Stage what today's feed would send, read a chunk at a time in a thread (as the run does)."""
    unique = journal is not None and journal.unique_values and bool(journal_id)
    # The feed's policy, as the run applies it: a filtered indicator is never sent, so never missing.
    judge = (await asyncio.to_thread(Policy.of, job.definition, target.name)).judge
    async with job.open() as records:
        while chunk := await asyncio.to_thread(_take, records):
            wanted = [
                (r.kind, r.value, Wanted(target.stamp(definition, r), r.expires is not None))
                for r in chunk
                if isinstance(r, Indicator) and judge(r) is None and target.unsupported(r) is None
            ]
            if unique and wanted:
                assert journal is not None
                held = await asyncio.to_thread(journal.held, journal_id, [(k, v) for k, v, _ in wanted])
                wanted = [w for w in wanted if not ((h := held.get((w[0], w[1]))) and h.elsewhere)]
            await asyncio.to_thread(comparison.add_wanted, wanted)


def _take(records: Iterator[Record]) -> list[Record]:
    return list(itertools.islice(records, _CHUNK))


def _correct(journal: Journal, definition_id: str, comparison: Comparison, freshness: Freshness) -> int:
    """Make the journal say what the target holds, for the repair run: forget absent keys, take the
    listed stamp of held ones the journal has otherwise (or not at all). Returns the rows changed."""
    forget: list[tuple[Kind, str]] = []
    take: list[Acked] = []
    changed = 0
    run: int | None = None
    for row in comparison.rows():
        verdict = classify(row, freshness)
        listed = row.listed
        if verdict == "absent":
            forget.append((row.kind, row.value))
        elif verdict in ("landed", "stale") and listed is not None and _unlike(row.sent, listed):
            take.append((row.kind, row.value, listed.remote_id, listed.stamp))
        if len(forget) >= _CHUNK or len(take) >= _CHUNK:
            run = _flush(journal, definition_id, forget, take, run)
            changed += len(forget) + len(take)
            forget, take = [], []
    if forget or take:
        run = _flush(journal, definition_id, forget, take, run)
        changed += len(forget) + len(take)
    if run is not None:
        journal.finish_run(run)
    return changed


def _unlike(sent: Held | None, listed: RemoteIndicator) -> bool:
    """Whether the journal's row (if any) says otherwise than the listing: its stamp or remote id."""
    return sent is None or sent.stamp != listed.stamp or sent.remote_id != listed.remote_id


def _flush(
    journal: Journal, definition_id: str, forget: list[tuple[Kind, str]], take: list[Acked], run: int | None
) -> int | None:
    if forget:
        journal.forget_keys(definition_id, forget)
    if take:
        # Recorded as a run of its own (finished at once): the stamps are the target's own.
        run = journal.begin_run() if run is None else run
        journal.record([(definition_id, take)], run)
    return run
