"""Fetch storage bodies in batches and push each page through register → upload → finalize."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from confluence_pipeline.clients.confluence import ConfluenceClient
from confluence_pipeline.clients.errors import RemoteError
from confluence_pipeline.clients.unique import ContentSpec, UniqueClient
from confluence_pipeline.domain.batches import batched
from confluence_pipeline.domain.cql import BODY_BATCH
from confluence_pipeline.domain.keys import content_key
from confluence_pipeline.domain.metadata import content_metadata
from confluence_pipeline.domain.models import PageBody, Source, SpaceRef
from confluence_pipeline.sync.images import ImageInliner
from confluence_pipeline.sync.items import FailureOf, ItemFailed, collect, existing_keys, remove_registration
from confluence_pipeline.sync.progress import PageProgress
from confluence_pipeline.sync.reports import PageFailure

log = logging.getLogger(__name__)


@dataclass
class IngestOutcome:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failures: list[PageFailure] = field(default_factory=list)


def _fetch_batch(
    confluence: ConfluenceClient, space: SpaceRef, ids: Sequence[str], outcome: IngestOutcome
) -> list[PageBody]:
    """Bodies of one batch; when the batch request fails, page by page so one bad page fails alone.

    Titles, labels and versions come from this fetch too, so they are as fresh as the body.
    """
    try:
        found = confluence.fetch_bodies(ids)
    except RemoteError as exc:
        log.warning(
            "Body batch of %d pages in space %s failed (%s); fetching them one by one", len(ids), space.key, exc
        )
        found = {}
        for page_id in ids:
            try:
                body = confluence.fetch_body(page_id)
            except RemoteError as single_exc:
                failure = PageFailure(page_id, space.key, "fetch", str(single_exc))
                log.error("%s", failure.line())
                outcome.failures.append(failure)
                continue
            if body is not None:
                found[page_id] = body
    failed = {f.page_id for f in outcome.failures}
    bodies: list[PageBody] = []
    for page_id in ids:
        body = found.get(page_id)
        if page_id in failed:
            continue
        if body is None:
            log.warning("Page %s in space %s vanished before its body was fetched; skipped", page_id, space.key)
            outcome.skipped += 1
            continue
        if body.page.space.id != space.id:
            log.warning("Page %s moved out of space %s during the sync; skipped until the next run", page_id, space.key)
            outcome.skipped += 1
            continue
        bodies.append(body)
    return bodies


def _page_failure(space: SpaceRef) -> FailureOf[PageBody]:
    return lambda body, stage, reason: PageFailure(body.page.id, space.key, stage, reason)


def _ingest_one(
    unique: UniqueClient,
    space: SpaceRef,
    body: PageBody,
    *,
    existed_before: bool,
    scope_id: str,
    sync_labels: Collection[str],
    source: Source,
    mark: str,
) -> None:
    page = body.page
    data = body.storage.encode("utf-8")
    spec = ContentSpec(
        key=content_key(space, page.id),
        title=page.title,
        url=page.web_url,
        byte_size=len(data),
        metadata={**content_metadata(page, sync_labels, mark), **dict(body.metadata)},
        scope_id=scope_id,
        source=source,
        updated_at=page.updated_at,  # the version fetched with this body, which is the one uploaded
    )
    try:
        registration = unique.register(spec)
    except RemoteError as exc:
        raise ItemFailed("register", str(exc)) from exc
    stage = "upload"
    try:
        unique.upload(registration, data, spec.mime_type)
        stage = "finalize"
        unique.finalize(spec, registration)
    except RemoteError as exc:
        if not existed_before:
            remove_registration(unique, "page", page.id, registration.id)
        # Content that existed before keeps its id (registration upserts by key), so deleting it would
        # remove a readable previous version, or content another source wrote under this key.
        raise ItemFailed(stage, str(exc)) from exc


def _ingest_with_images(images: ImageInliner, unique: UniqueClient, space: SpaceRef, body: PageBody, **kw: Any) -> None:
    with images.page(body) as inlined:
        _ingest_one(unique, space, inlined, **kw)


def ingest_pages(
    confluence: ConfluenceClient,
    unique: UniqueClient,
    *,
    space: SpaceRef,
    page_ids: Sequence[str],
    new_ids: Collection[str],
    scope_id: str,
    sync_labels: Collection[str],
    source: Source,
    mark: str,
    concurrency: int,
    progress: PageProgress,
    images: ImageInliner | None = None,
) -> IngestOutcome:
    """Ingest the pages `page_ids`; at most two batches of bodies are held at once.

    While the workers upload one batch, the next is fetched and queued behind it, so no worker waits at a
    batch boundary; the oldest batch is collected before a third is fetched, which bounds the memory. With
    `images`, each body's images are inlined by the worker that uploads it. `progress` logs how far the space
    got at regular intervals.
    """
    outcome = IngestOutcome()
    failure_of = _page_failure(space)
    ingest: Any = _ingest_one if images is None else partial(_ingest_with_images, images)
    with progress, ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"ingest-{space.key[:10]}") as pool:
        in_flight: deque[list[tuple[PageBody, Future[None]]]] = deque()
        for batch in batched(list(page_ids), BODY_BATCH):
            if len(in_flight) == 2:
                _collect(in_flight.popleft(), outcome, failure_of, new_ids)
            bodies, existing = existing_keys(
                unique,
                space,
                _fetch_batch(confluence, space, batch, outcome),
                new_ids,
                key_of=_page_id,
                failure_of=failure_of,
                failures=outcome.failures,
            )
            if images is not None:
                images.prepare(bodies)
            progress.advance(len(batch) - len(bodies))  # failed or gone before their upload
            in_flight.append(
                [
                    (
                        body,
                        pool.submit(
                            progress.counted(ingest),
                            unique,
                            space,
                            body,
                            existed_before=content_key(space, body.page.id) in existing,
                            scope_id=scope_id,
                            sync_labels=sync_labels,
                            source=source,
                            mark=mark,
                        ),
                    )
                    for body in bodies
                ]
            )
        while in_flight:
            _collect(in_flight.popleft(), outcome, failure_of, new_ids)
    return outcome


def _page_id(body: PageBody) -> str:
    return body.page.id


def _collect(
    in_flight: list[tuple[PageBody, Future[None]]],
    outcome: IngestOutcome,
    failure_of: FailureOf[PageBody],
    new_ids: Collection[str],
) -> None:
    for body in collect(in_flight, failure_of, outcome.failures):
        if body.page.id in new_ids:
            outcome.created += 1
        else:
            outcome.updated += 1
