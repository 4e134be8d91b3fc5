"""The synthetic wiki: deterministic pages, trees and labels to sync, and the ~1% change before the last sync."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.options import ALL_LABEL, SINGLE_LABEL, BenchOptions
from benchmarks.report import DELETE_BATCH_TARGET
from confluence_sandbox.confluence import Wiki

_WORDS = (
    "deploy",
    "rollback",
    "cluster",
    "service",
    "latency",
    "budget",
    "incident",
    "runbook",
    "owner",
    "review",
    "quarterly",
    "roadmap",
    "customer",
    "onboarding",
    "pipeline",
    "schema",
    "migration",
    "index",
    "replica",
    "backup",
    "restore",
    "alert",
    "threshold",
    "dashboard",
    "capacity",
    "Größe",
    "Übersicht",
    "café",
    "naïve",
    "résumé",
    "設計",
    "運用",
    "données",
    "équipe",
)


def _paragraph(rng: random.Random) -> str:
    words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(30, 120)))
    return f"<p>{words.capitalize()}.</p>"


def _fragment_pool(rng: random.Random) -> list[str]:
    """Storage-format building blocks: paragraphs, lists, tables, code and info macros, links, headings."""
    pool: list[str] = []
    for i in range(240):
        kind = i % 8
        if kind == 0:
            pool.append(f"<h2>{rng.choice(_WORDS).title()} {rng.choice(_WORDS)}</h2>")
        elif kind == 1:
            items = "".join(f"<li>{rng.choice(_WORDS)} {rng.choice(_WORDS)}</li>" for _ in range(rng.randint(3, 9)))
            pool.append(f"<ul>{items}</ul>")
        elif kind == 2:
            rows = "".join(
                "<tr>" + "".join(f"<td>{rng.choice(_WORDS)}</td>" for _ in range(4)) + "</tr>" for _ in range(6)
            )
            pool.append(
                f"<table><tbody><tr><th>Name</th><th>Owner</th><th>State</th><th>Note</th></tr>{rows}</tbody></table>"
            )
        elif kind == 3:
            code = "\n".join(f"kubectl rollout restart deploy/{rng.choice(_WORDS).lower()}" for _ in range(8))
            pool.append(
                '<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">bash</ac:parameter>'
                f"<ac:plain-text-body><![CDATA[{code}]]></ac:plain-text-body></ac:structured-macro>"
            )
        elif kind == 4:
            pool.append(
                '<ac:structured-macro ac:name="info"><ac:rich-text-body>'
                f"{_paragraph(rng)}</ac:rich-text-body></ac:structured-macro>"
            )
        elif kind == 5:
            pool.append(
                f'<p>See <ac:link><ri:page ri:content-title="{rng.choice(_WORDS)} runbook"/></ac:link> and '
                f'<a href="https://example.com/{rng.choice(_WORDS)}">the dashboard</a>.</p>'
            )
        else:
            pool.append(_paragraph(rng))
    return pool


def _body(rng: random.Random, pool: Sequence[str], page_no: int, title: str) -> str:
    """A storage body of 2–50 KB (log-uniform: most pages are small, a few are long)."""
    target = int(math.exp(rng.uniform(math.log(2048), math.log(50 * 1024))))
    parts = [f"<h1>{title}</h1><p>Page {page_no}.</p>"]
    size = len(parts[0])
    while size < target - 1200:  # fragments are under 1.2 KB, so the body stays under 50 KB
        fragment = rng.choice(pool)
        parts.append(fragment)
        size += len(fragment)
    return "".join(parts)


# Attachment kinds and how often each appears; zip archives are not in the default ATTACHMENT_MIME_TYPES.
_ATTACHMENT_KINDS = (
    ("pdf", "application/pdf", 12),
    ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", 4),
    ("png", "image/png", 3),
    ("zip", "application/zip", 1),
)
ATTACHMENT_MIN_BYTES = 10 * 1024
ATTACHMENT_MAX_BYTES = 5 * 1024**2
SYNCED_ATTACHMENT_TYPES = frozenset(kind for _, kind, _ in _ATTACHMENT_KINDS if kind != "application/zip")


@dataclass
class SyntheticWiki:
    """The seeded wiki and what the benchmark needs to know about it to change it and to compute floors."""

    wiki: Wiki
    space_keys: list[str]
    synced: list[str]  # ids a sync should ingest
    single_only: dict[str, list[str]]  # per space: ids labelled only with SINGLE_LABEL and under no root
    body_bytes: int
    rng: random.Random
    pool: list[str]
    next_no: int
    attachments: list[str] = field(default_factory=list)  # ids of every attachment the benchmark added

    def synced_attachments(self) -> list[Any]:
        """The current attachments of synced pages that a sync transfers (allowed type)."""
        synced = set(self.synced)
        return [
            a
            for a in (self.wiki.attachments[i] for i in self.attachments if i in self.wiki.attachments)
            if a.status == "current" and a.container.id in synced and a.media_type in SYNCED_ATTACHMENT_TYPES
        ]

    def describe(self) -> dict[str, Any]:
        labelled = sum(1 for i in self.synced if self.wiki.pages[i].labels)
        moved = self.synced_attachments()
        return {
            "synced_pages": len(self.synced),
            "labelled": labelled,
            "descendants": len(self.synced) - labelled,
            "roots": sum(1 for i in self.synced if ALL_LABEL in self.wiki.pages[i].labels),
            "spaces": len(self.space_keys),
            "unsynced_pages": len(self.wiki.pages) - len(self.synced),
            "max_depth": max(self.wiki.depth(self.wiki.pages[i]) for i in self.synced),
            "body_mb": round(self.body_bytes / 1e6, 1),
            "mean_body_kb": round(self.body_bytes / len(self.synced) / 1024, 1),
            "attachments": len(self.attachments),
            "attachments_synced": len(moved),
            "attachment_bytes": sum(a.size for a in moved),
            "attachment_mb": round(sum(a.size for a in moved) / 1024**2, 1),
        }


def build_wiki(options: BenchOptions) -> SyntheticWiki:
    """N syncable pages over S global spaces: a few deep trees, many small labelled sections, single pages.

    Deterministic for a given seed, so request counts are too. Unlabelled pages (section parents, drafts) sit
    around the synced ones as in a real wiki and must never be synced.
    """
    rng = random.Random(options.seed)
    pool = _fragment_pool(rng)
    wiki = Wiki()
    keys = [f"SP{i:03d}" for i in range(options.spaces)]
    for key in keys:
        wiki.add_space(key, f"Space {key}")
    wiki.add_space("~owner", "Personal space", type="personal")
    base = datetime(2024, 1, 1, tzinfo=UTC)
    synced: list[str] = []
    single_only: dict[str, list[str]] = {key: [] for key in keys}
    total_bytes = 0
    counter = 0

    def add(
        space: str,
        *,
        parent: str | None = None,
        labels: tuple[str, ...] = (),
        sync: bool = True,
        kind: str = "page",
        tiny: bool = False,
    ) -> str:
        nonlocal counter, total_bytes
        counter += 1
        title = f"{kind.title()} {counter:06d} {rng.choice(_WORDS)}"
        body = f"<p>draft {counter}</p>" if tiny else _body(rng, pool, counter, title)
        when = base + timedelta(minutes=counter)
        page = wiki.add_page(space, title, body=body, parent_id=parent, labels=labels, type=kind, when=when)
        if sync:
            synced.append(page.id)
            total_bytes += len(body.encode("utf-8"))
        return page.id

    n = options.pages
    tree_pages = int(n * options.tree_share)
    trees = min(options.deep_trees, max(1, tree_pages // 10)) if tree_pages else 0
    sections = n // 250  # small `ai-ingest-all` sections: a root and a few children
    # Deep trees: a spine 30 levels deep, the rest hung below random earlier nodes.
    remaining_tree = tree_pages
    for t in range(trees):
        size = remaining_tree // (trees - t)
        remaining_tree -= size
        space = keys[t % len(keys)]
        nodes = [add(space, labels=(ALL_LABEL,))]
        for depth in range(1, min(size, 30)):
            nodes.append(add(space, parent=nodes[depth - 1]))
        while len(nodes) < size:
            # Every 20th descendant also carries the single label: reached twice, synced once.
            labels = (SINGLE_LABEL,) if len(nodes) % 20 == 0 else ()
            nodes.append(add(space, parent=rng.choice(nodes), labels=labels))
    section_pages = 0
    for s in range(sections):
        space = keys[s % len(keys)]
        parent = add(space, sync=False, tiny=True)  # an unlabelled container page above the section
        root = add(space, parent=parent, labels=(ALL_LABEL,))
        section_pages += 1
        for _ in range(rng.randint(0, 4)):
            add(space, parent=root)
            section_pages += 1
    singles = n - tree_pages - section_pages
    for i in range(singles):
        space = keys[i % len(keys)]
        parent = add(space, sync=False, tiny=True) if i % 10 == 0 else None
        kind = "blogpost" if i % 50 == 0 else "page"
        page_id = add(space, parent=None if kind == "blogpost" else parent, labels=(SINGLE_LABEL,), kind=kind)
        single_only[space].append(page_id)
    for i in range(max(1, n // 100)):  # never synced: personal space and unlabelled drafts
        add("~owner", labels=(SINGLE_LABEL,), sync=False, tiny=True)
        add(keys[i % len(keys)], sync=False, tiny=True)
    synthetic = SyntheticWiki(wiki, keys, synced, single_only, total_bytes, rng, pool, counter)
    attach_files(synthetic, round(n * options.attachment_share))
    if options.large_file_mb:
        large = wiki.add_attachment(
            synced[0], "large-export.pdf", size=options.large_file_mb * 1024**2, seed=7, media_type="application/pdf"
        )
        synthetic.attachments.append(large.id)
    return synthetic


def attach_files(synthetic: SyntheticWiki, count: int) -> list[str]:
    """`count` attachments on random synced pages: 10 KB-5 MB (log-uniform), bytes generated while they are sent."""
    wiki, rng = synthetic.wiki, synthetic.rng
    kinds = [(ext, kind) for ext, kind, weight in _ATTACHMENT_KINDS for _ in range(weight)]
    added: list[str] = []
    for page_id in sorted(rng.sample(synthetic.synced, min(count, len(synthetic.synced))), key=int):
        extension, kind = rng.choice(kinds)
        size = int(math.exp(rng.uniform(math.log(ATTACHMENT_MIN_BYTES), math.log(ATTACHMENT_MAX_BYTES))))
        synthetic.next_no += 1
        name = f"file-{synthetic.next_no:06d}.{extension}"
        attachment = wiki.add_attachment(page_id, name, size=size, seed=synthetic.next_no, media_type=kind)
        added.append(attachment.id)
    synthetic.attachments.extend(added)
    return added


@dataclass(frozen=True)
class Change:
    edited: int
    added: int
    deleted: int
    changed_per_space: tuple[int, ...]
    deleted_ids: tuple[str, ...] = ()
    attachments_transferred: int = 0  # new and new versions of synced attachments: one download each


def change_wiki(synthetic: SyntheticWiki, share: float) -> Change:
    """Edit ~`share` of the synced pages, add a tenth as many new ones, and unlabel a few in one space."""
    wiki, rng = synthetic.wiki, synthetic.rng
    n = len(synthetic.synced)
    edits = max(1, round(n * share))
    added = max(1, edits // 10)
    per_space: Counter[str] = Counter()
    for page_id in sorted(rng.sample(synthetic.synced, edits), key=int):
        page = wiki.pages[page_id]
        wiki.update_page(page_id, body=page.body + "<p>Edited for the resync benchmark.</p>")
        per_space[page.space_key] += 1
    for i in range(added):
        space = synthetic.space_keys[i % len(synthetic.space_keys)]
        synthetic.next_no += 1
        title = f"New page {synthetic.next_no:06d}"
        page = wiki.add_page(
            space, title, body=_body(rng, synthetic.pool, synthetic.next_no, title), labels=[SINGLE_LABEL]
        )
        synthetic.synced.append(page.id)
        synthetic.single_only[space].append(page.id)
        per_space[space] += 1
    # Deletions come from one space (a team tidying up its labels), so one delete call can carry them all.
    victims_space = max(synthetic.single_only, key=lambda key: len(synthetic.single_only[key]))
    candidates = [i for i in synthetic.single_only[victims_space] if wiki.pages[i].version == 1]
    deleted = min(len(candidates) - 1, max(DELETE_BATCH_TARGET, n // 1000))
    victims = candidates[:deleted]
    for page_id in victims:
        wiki.remove_label(page_id, SINGLE_LABEL)
        synthetic.synced.remove(page_id)
        synthetic.single_only[victims_space].remove(page_id)
    counts = tuple(per_space.get(key, 0) for key in synthetic.space_keys)
    transferred = _change_attachments(synthetic, share)
    return Change(edits, added, deleted, counts, tuple(victims), transferred)


def _change_attachments(synthetic: SyntheticWiki, share: float) -> int:
    """New versions of ~`share` of the synced attachments, a tenth as many new files and one removed file;
    returns how many a sync must transfer."""
    current = synthetic.synced_attachments()
    if not current:
        return 0
    wiki, rng = synthetic.wiki, synthetic.rng
    updated = max(1, round(len(current) * share))
    for attachment in sorted(rng.sample(current, updated), key=lambda a: int(a.numeric_id)):
        synthetic.next_no += 1
        size = int(math.exp(rng.uniform(math.log(ATTACHMENT_MIN_BYTES), math.log(ATTACHMENT_MAX_BYTES))))
        wiki.update_attachment(attachment.id, size=size, seed=synthetic.next_no)
    untouched = [a for a in synthetic.synced_attachments() if a.version == 1]
    if untouched:
        wiki.remove_attachment(rng.choice(untouched).id)
    before = {a.id for a in synthetic.synced_attachments()}
    attach_files(synthetic, max(1, updated // 10))
    added = len({a.id for a in synthetic.synced_attachments()} - before)
    return updated + added
