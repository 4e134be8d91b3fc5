"""In-memory state of the Unique emulator: content rows, upload slots, scopes and their accesses."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

QUEUED = "QUEUED"
FINISHED = "FINISHED"
NON_EMPTY_FOLDER = "Cannot delete non-empty folder"


def utc_now() -> datetime:
    return datetime.now(UTC)


class UniqueApiError(Exception):
    """A client-visible failure; the GraphQL layer turns it into the contract's error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class StoredContent:
    """One content row as Unique would hold it."""

    id: str
    key: str
    title: str
    mime_type: str
    owner_type: str
    owner_id: str | None
    url: str | None = None
    metadata: dict[str, str] | None = None
    byte_size: int | None = None
    source_kind: str | None = None
    source_name: str | None = None
    source_owner_type: str | None = None
    store_internally: bool = True
    data: bytes | None = None  # the finalized bytes; None before finalize or when the emulator keeps no bytes
    sha256: str | None = None  # hex digest of the finalized bytes, kept even when the bytes are not
    ingestion_state: str = QUEUED
    created_at: datetime = field(default_factory=utc_now)
    finalized_at: datetime | None = None
    pending_upload: bytes | None = None
    ingestion_config: Any = None
    expires_at: datetime | None = None
    updated_at: datetime = field(default_factory=utc_now)

    def __repr__(self) -> str:  # page bodies would drown a failing assertion
        size = None if self.data is None else len(self.data)
        return (
            f"StoredContent(id={self.id!r}, key={self.key!r}, owner_id={self.owner_id!r}, "
            f"state={self.ingestion_state!r}, finalized_at={self.finalized_at!r}, data_len={size})"
        )

    @property
    def source(self) -> tuple[str | None, str | None]:
        """(sourceKind, sourceName) as the last ContentUpsert that wrote this row sent them."""
        return self.source_kind, self.source_name


@dataclass(frozen=True)
class ScopeAccess:
    entity_id: str
    entity_type: str  # USER | GROUP
    access_type: str  # MANAGE | READ | WRITE


@dataclass
class StoredScope:
    id: str
    name: str
    parent_id: str | None = None
    external_id: str | None = None
    accesses: list[ScopeAccess] = field(default_factory=list)
    created_at: datetime = field(default_factory=utc_now)


@dataclass
class UploadSlot:
    """What one registration hands out: a write key for the PUT and a read URL for the finalize.

    After a PUT, `length` and `sha256` describe the bytes received; `data` holds them unless the
    emulator was told not to keep upload bytes.
    """

    write_key: str
    read_url: str
    content_id: str
    data: bytes | None = None
    content_type: str | None = None
    length: int | None = None  # None until a PUT completed
    sha256: str | None = None
    registered_byte_size: int | None = None  # the byteSize the registration declared


@dataclass(frozen=True)
class SubmittedFile:
    """One file-diff `fileList` entry: its source time (None for `""`) and its location."""

    updated_at: datetime | None
    url: str


@dataclass(frozen=True)
class FileDiffReport:
    """One file-diff call as the emulator answered it; the lists hold relative keys, as on the wire."""

    partial_key: str
    source_kind: str
    source_name: str
    new: tuple[str, ...]
    updated: tuple[str, ...]
    moved: tuple[str, ...]
    deleted: tuple[str, ...]
    moved_stored_keys: tuple[str, ...] = ()  # full keys of the stored rows whose url differed

    def response(self) -> dict[str, list[str]]:
        return {
            "newFiles": list(self.new),
            "updatedFiles": list(self.updated),
            "movedFiles": list(self.moved),
            "deletedFiles": list(self.deleted),
        }


@dataclass(frozen=True)
class DeletedFolder:
    id: str
    name: str
    path: str
    fail_reason: str | None = None  # None = deleted


def metadata_as_strings(value: Any) -> dict[str, str] | None:
    """Unique keeps metadata as a flat string map; anything else is JSON-encoded."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise UniqueApiError(400, "metadata must be a JSON object")
    return {
        str(k): v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), ensure_ascii=False)
        for k, v in value.items()
    }


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


class UniqueStore:
    """Thread-safe state; every mutating operation runs under one lock so registrations stay atomic."""

    def __init__(self, *, base_url: str = "", clock: Callable[[], datetime] = utc_now) -> None:
        self.lock = threading.RLock()
        self.base_url = base_url  # filled in by the server once its port is known
        self.clock = clock
        self.contents: dict[str, StoredContent] = {}
        self.scopes: dict[str, StoredScope] = {}
        self.uploads: dict[str, UploadSlot] = {}  # by write key
        self._uploads_by_read_url: dict[str, str] = {}
        self._uploads_by_content: dict[str, list[str]] = {}  # content id -> its write keys
        # Key -> id; a scan per registration made 100k-page benchmarks quadratic. Rebuilt whenever it and
        # `contents` disagree, so code that edits `contents` directly stays correct.
        self._id_by_key: dict[str, str] = {}

    # -- content reads ---------------------------------------------------------------------
    def content_by_key(self, key: str) -> StoredContent | None:
        with self.lock:
            content_id = self._id_by_key.get(key)
            if len(self._id_by_key) == len(self.contents):
                content = self.contents.get(content_id) if content_id is not None else None
                if content_id is None or (content is not None and content.key == key):
                    return content
            # `contents` was changed behind the index (a test may do that): rebuild it once.
            self._id_by_key = {c.key: c.id for c in self.contents.values()}
            content_id = self._id_by_key.get(key)
            return self.contents.get(content_id) if content_id is not None else None

    def keys(self) -> set[str]:
        with self.lock:
            return {c.key for c in self.contents.values()}

    def finalized_keys(self) -> set[str]:
        with self.lock:
            return {c.key for c in self.contents.values() if c.finalized_at is not None}

    def query_contents(self, where: Mapping[str, Any] | None) -> list[StoredContent]:
        with self.lock:
            return [c for c in self.contents.values() if _content_matches(c, where or {})]

    def sources(self) -> dict[str, tuple[str | None, str | None]]:
        """Key -> (sourceKind, sourceName) of every stored row."""
        with self.lock:
            return {c.key: c.source for c in self.contents.values()}

    def content_bytes(self, key: str) -> bytes | None:
        """The finalized bytes under `key`; None when nothing under it was finalized.

        Raises ValueError when the row was finalized but its bytes were not kept (`keep_upload_bytes`
        off): its `byte_size` and `sha256` are all that is known then.
        """
        with self.lock:
            content = self.content_by_key(key)
            if content is None or content.finalized_at is None:
                return None
            if content.data is None:
                raise ValueError(
                    f"the bytes of {key!r} were not kept; compare byte_size={content.byte_size} and sha256 instead"
                )
            return content.data

    # -- content writes --------------------------------------------------------------------
    def seed_content(
        self,
        key: str,
        *,
        owner_id: str | None,
        title: str = "t",
        data: bytes = b"<p>seeded</p>",
        finalized_at: datetime | None = None,
        source_kind: str = "ATLASSIAN_CONFLUENCE_CLOUD",
        source_name: str = "https://confluence.example",
        metadata: Mapping[str, Any] | None = None,
        mime_type: str = "text/html",
        url: str | None = None,
    ) -> StoredContent:
        """Put a finalized row in place for a test (set `finalized_at = None` afterwards for a half-ingested one)."""
        with self.lock:
            if self.content_by_key(key) is not None:
                raise ValueError(f"content with key {key!r} already exists")
            now = self.clock()
            content = StoredContent(
                id=_new_id("cont"),
                key=key,
                title=title,
                mime_type=mime_type,
                owner_type="SCOPE",
                owner_id=owner_id,
                url=url,
                metadata=metadata_as_strings(metadata),
                byte_size=len(data),
                source_kind=source_kind,
                source_name=source_name,
                source_owner_type="COMPANY",
                data=data,
                sha256=hashlib.sha256(data).hexdigest(),
                ingestion_state=FINISHED,
                created_at=now,
                finalized_at=finalized_at or now,
                updated_at=now,
            )
            self.contents[content.id] = content
            self._id_by_key[content.key] = content.id
            return content

    def register_content(self, fields: Mapping[str, Any]) -> tuple[StoredContent, UploadSlot]:
        """Upsert by key without a file: an existing row is returned untouched, with a fresh upload slot."""
        with self.lock:
            content = self.content_by_key(fields["key"])
            if content is None:
                scope_id = fields.get("owner_id")
                self._require_scope_if_given(scope_id)
                now = self.clock()
                content = StoredContent(
                    id=_new_id("cont"),
                    key=fields["key"],
                    title=fields.get("title") or "",
                    mime_type=fields["mime_type"],
                    owner_type=fields.get("owner_type") or "SCOPE",
                    owner_id=scope_id,
                    url=fields.get("url"),
                    metadata=metadata_as_strings(fields.get("metadata")),
                    byte_size=fields.get("byte_size"),
                    source_kind=fields.get("source_kind"),
                    source_name=fields.get("source_name"),
                    source_owner_type=fields.get("source_owner_type"),
                    store_internally=fields.get("store_internally", True) is not False,
                    ingestion_config=fields.get("ingestion_config"),
                    expires_at=fields.get("expires_at"),
                    created_at=now,
                    updated_at=now,
                )
                self.contents[content.id] = content
                self._id_by_key[content.key] = content.id
            write_key = secrets.token_urlsafe(24)
            slot = UploadSlot(
                write_key=write_key,
                read_url=f"unique://content/{content.id}/{secrets.token_urlsafe(16)}",
                content_id=content.id,
                registered_byte_size=fields.get("byte_size"),
            )
            self.uploads[write_key] = slot
            self._uploads_by_read_url[slot.read_url] = write_key
            self._uploads_by_content.setdefault(content.id, []).append(write_key)
            return content, slot

    def record_upload(
        self,
        write_key: str,
        data: bytes | None,
        content_type: str | None,
        *,
        length: int | None = None,
        sha256: str | None = None,
    ) -> UploadSlot | None:
        """Store a PUT body against its slot; None when the key was never handed out (or its content is gone).

        Pass `data=None` with `length` and `sha256` to record an upload whose bytes are not kept.
        """
        if data is not None:
            length, sha256 = len(data), hashlib.sha256(data).hexdigest()
        if length is None or sha256 is None:
            raise ValueError("an upload without data needs its length and sha256")
        with self.lock:
            slot = self.uploads.get(write_key)
            if slot is None or slot.content_id not in self.contents:
                return None
            slot.data = data
            slot.length = length
            slot.sha256 = sha256
            slot.content_type = content_type
            self.contents[slot.content_id].pending_upload = data
            return slot

    def finalize_content(
        self, file_url: str, fields: Mapping[str, Any], *, check_byte_size: bool = True
    ) -> tuple[StoredContent, UploadSlot]:
        """Make the upload behind `file_url` the content's current version.

        With `check_byte_size`, a byteSize declared at registration or finalize that differs from the
        uploaded length is a 400 and changes nothing.
        """
        with self.lock:
            write_key = self._uploads_by_read_url.get(file_url)
            slot = self.uploads.get(write_key) if write_key else None
            if slot is None or slot.length is None:
                raise UniqueApiError(400, f"No completed upload for fileUrl of content key {fields['key']!r}")
            content = self.contents.get(slot.content_id)
            if content is None:
                raise UniqueApiError(404, f"Content for fileUrl of key {fields['key']!r} no longer exists")
            if content.key != fields["key"]:
                raise UniqueApiError(400, f"fileUrl belongs to key {content.key!r}, not {fields['key']!r}")
            if check_byte_size:
                for declared in (fields.get("byte_size"), slot.registered_byte_size):
                    if declared is not None and declared != slot.length:
                        raise UniqueApiError(
                            400,
                            f"byteSize {declared} does not match the uploaded {slot.length} bytes for {content.key!r}",
                        )
            scope_id = fields.get("owner_id")
            self._require_scope_if_given(scope_id)
            metadata = metadata_as_strings(fields.get("metadata"))
            now = self.clock()
            content.title = fields.get("title") or content.title
            content.mime_type = fields["mime_type"]
            content.owner_type = fields.get("owner_type") or content.owner_type
            if scope_id is not None:
                content.owner_id = scope_id
            content.url = fields.get("url")
            content.metadata = metadata
            content.byte_size = slot.length
            content.source_kind = fields.get("source_kind")
            content.source_name = fields.get("source_name")
            content.source_owner_type = fields.get("source_owner_type")
            content.store_internally = fields.get("store_internally", True) is not False
            content.ingestion_config = fields.get("ingestion_config")
            content.expires_at = fields.get("expires_at")
            content.data = slot.data
            content.sha256 = slot.sha256
            content.pending_upload = None
            content.finalized_at = now
            content.updated_at = now
            content.ingestion_state = FINISHED
            return content, slot

    def update_content(self, content_id: str, *, owner_id: str | None, changes: Mapping[str, Any]) -> StoredContent:
        with self.lock:
            content = self.contents.get(content_id)
            if content is None:
                raise UniqueApiError(404, f"Content {content_id} not found")
            if owner_id is not None:
                self._require_scope_if_given(owner_id)
                content.owner_id = owner_id
            for name in ("url", "title", "expires_at"):
                if name in changes:
                    setattr(content, name, changes[name])
            if "metadata" in changes:
                content.metadata = metadata_as_strings(changes["metadata"])
            content.updated_at = self.clock()
            return content

    def delete_contents(self, content_ids: Iterable[str]) -> list[StoredContent]:
        """Delete what exists; unknown ids are silently skipped."""
        with self.lock:
            deleted = [self.contents.pop(cid) for cid in dict.fromkeys(content_ids) if cid in self.contents]
            for content in deleted:
                if self._id_by_key.get(content.key) == content.id:
                    del self._id_by_key[content.key]
                for write_key in self._uploads_by_content.pop(content.id, ()):
                    slot = self.uploads.pop(write_key, None)
                    if slot is not None:
                        self._uploads_by_read_url.pop(slot.read_url, None)
            return deleted

    # -- file diff -------------------------------------------------------------------------
    def file_diff(
        self,
        partial_key: str,
        submitted: Mapping[str, SubmittedFile],
        *,
        source_kind: str = "",
        source_name: str = "",
        report_moves: bool = True,
        filter_by_source: bool = False,
    ) -> FileDiffReport:
        """Compare submitted relative keys against what is stored under the partial key.

        Stored rows are those whose key contains `partialKey` (only those written with the same
        source when `filter_by_source`), matched on their key's last `/` segment. A stale match
        (never finalized, or submitted `updatedAt` newer than the last finalize) is updated; a
        fresh match whose stored url differs from the submitted one is moved, when `report_moves`.
        A row stored without a url has no location to compare and is never moved.
        """
        with self.lock:
            stored: dict[str, list[StoredContent]] = {}
            for content in self.contents.values():
                if partial_key not in content.key:
                    continue
                if filter_by_source and content.source != (source_kind, source_name):
                    continue
                stored.setdefault(content.key.rsplit("/", 1)[-1], []).append(content)
            new: list[str] = []
            updated: list[str] = []
            moved: list[str] = []
            moved_stored: list[str] = []
            for key, file in submitted.items():
                matches = stored.get(key)
                if not matches:
                    new.append(key)
                elif any(_is_stale(c, file.updated_at) for c in matches):
                    updated.append(key)
                elif report_moves:
                    elsewhere = [c.key for c in matches if c.url is not None and c.url != file.url]
                    if elsewhere:
                        moved.append(key)
                        moved_stored += elsewhere
        return FileDiffReport(
            partial_key=partial_key,
            source_kind=source_kind,
            source_name=source_name,
            new=tuple(new),
            updated=tuple(updated),
            moved=tuple(moved),
            deleted=tuple(key for key in stored if key not in submitted),
            moved_stored_keys=tuple(moved_stored),
        )

    # -- scopes ----------------------------------------------------------------------------
    def add_scope(self, name: str, parent_id: str | None = None, external_id: str | None = None) -> StoredScope:
        with self.lock:
            if parent_id is not None and parent_id not in self.scopes:
                raise UniqueApiError(404, f"Parent scope {parent_id} not found")
            if "/" in name or not name:
                raise UniqueApiError(400, f"Invalid scope name {name!r}")
            if external_id is not None:
                self._require_free_external_id(external_id, None)
            scope = StoredScope(id=_new_id("scope"), name=name, parent_id=parent_id, external_id=external_id)
            self.scopes[scope.id] = scope
            return scope

    def scope(self, scope_id: str) -> StoredScope:
        with self.lock:
            scope = self.scopes.get(scope_id)
            if scope is None:
                raise UniqueApiError(404, f"Scope {scope_id} not found")
            return scope

    def scope_path(self, scope_id: str) -> str:
        with self.lock:
            names: list[str] = []
            current: str | None = scope_id
            while current is not None:
                scope = self.scope(current)
                names.append(scope.name)
                current = scope.parent_id
            return "/" + "/".join(reversed(names))

    def children(self, scope_id: str | None) -> list[StoredScope]:
        with self.lock:
            return [s for s in self.scopes.values() if s.parent_id == scope_id]

    def query_scopes(self, where: Mapping[str, Any]) -> list[StoredScope]:
        with self.lock:
            return [s for s in self.scopes.values() if _scope_matches(s, where)]

    def generate_scopes(self, paths: list[str], *, inherit_access: bool) -> list[StoredScope]:
        """One leaf per path, in input order; missing ancestors are created on the way."""
        with self.lock:
            leaves: list[StoredScope] = []
            for path in paths:
                names = [part for part in path.split("/") if part]
                if not names:
                    raise UniqueApiError(400, f"Invalid scope path {path!r}")
                parent: StoredScope | None = None
                for name in names:
                    parent_id = parent.id if parent else None
                    found = next((s for s in self.children(parent_id) if s.name == name), None)
                    if found is None:
                        found = self.add_scope(name, parent_id)
                        if inherit_access and parent is not None:
                            found.accesses = list(parent.accesses)
                    parent = found
                assert parent is not None
                leaves.append(parent)
            return leaves

    def change_accesses(
        self, scope_id: str, accesses: list[ScopeAccess], *, grant: bool, apply_to_sub_scopes: bool
    ) -> None:
        with self.lock:
            targets = [self.scope(scope_id)]
            if apply_to_sub_scopes:
                targets += [self.scopes[i] for i in self._descendant_ids(scope_id)]
            for scope in targets:
                for access in accesses:
                    if grant and access not in scope.accesses:
                        scope.accesses.append(access)
                    elif not grant and access in scope.accesses:
                        scope.accesses.remove(access)

    def update_scope(self, scope_id: str, changes: Mapping[str, Any]) -> StoredScope:
        with self.lock:
            scope = self.scope(scope_id)
            if "externalId" in changes and changes["externalId"] is not None:
                self._require_free_external_id(changes["externalId"], scope_id)
            new_parent: str | None = scope.parent_id
            if changes.get("parrentScope"):
                new_parent = ((changes["parrentScope"] or {}).get("connect") or {}).get("id")
                if new_parent is None:
                    raise UniqueApiError(400, "parrentScope.connect.id is required")
                self.scope(new_parent)
                if new_parent == scope_id or new_parent in self._descendant_ids(scope_id):
                    raise UniqueApiError(400, "A scope cannot be moved below itself")
            if changes.get("name"):
                scope.name = changes["name"]
            if "externalId" in changes:
                scope.external_id = changes["externalId"]
            scope.parent_id = new_parent
            return scope

    def delete_folder(self, scope_id: str, *, recursive: bool) -> list[DeletedFolder]:
        """Non-recursive deletes only an empty folder; recursive takes the subtree and its content with it."""
        with self.lock:
            scope = self.scope(scope_id)
            path = self.scope_path(scope_id)
            if not recursive:
                has_content = any(c.owner_id == scope_id for c in self.contents.values())
                if has_content or self.children(scope_id):
                    return [DeletedFolder(scope.id, scope.name, path, NON_EMPTY_FOLDER)]
                del self.scopes[scope_id]
                return [DeletedFolder(scope.id, scope.name, path)]
            doomed = [*self._descendant_ids(scope_id), scope_id]
            results: list[DeletedFolder] = []
            for sid in doomed:  # deepest first, so every reported path still resolves
                doomed_scope = self.scopes[sid]
                results.append(DeletedFolder(sid, doomed_scope.name, self.scope_path(sid)))
            self.delete_contents([c.id for c in self.contents.values() if c.owner_id in set(doomed)])
            for sid in doomed:
                del self.scopes[sid]
            return results

    # -- internals -------------------------------------------------------------------------
    def _descendant_ids(self, scope_id: str) -> list[str]:
        """Deepest first."""
        out: list[str] = []
        for child in self.children(scope_id):
            out += self._descendant_ids(child.id)
            out.append(child.id)
        return out

    def _require_scope_if_given(self, scope_id: str | None) -> None:
        if scope_id is not None and scope_id not in self.scopes:
            raise UniqueApiError(404, f"Scope {scope_id} not found")

    def _require_free_external_id(self, external_id: str, scope_id: str | None) -> None:
        holder = next((s for s in self.scopes.values() if s.external_id == external_id and s.id != scope_id), None)
        if holder is not None:
            raise UniqueApiError(400, f"externalId {external_id!r} is already used by another scope")


def _is_stale(content: StoredContent, submitted_at: datetime | None) -> bool:
    if content.finalized_at is None:
        return True
    return submitted_at is not None and submitted_at > content.finalized_at


def _string_filter_matches(value: str | None, flt: Mapping[str, Any] | None) -> bool:
    if not flt:
        return True
    if "equals" in flt and value != flt["equals"]:
        return False
    if flt.get("not") is not None and value == flt["not"]:
        return False
    if flt.get("in") is not None and value not in flt["in"]:
        return False
    if flt.get("notIn") is not None and value in flt["notIn"]:
        return False
    for op, test in (("startsWith", str.startswith), ("endsWith", str.endswith), ("contains", str.__contains__)):
        if flt.get(op) is not None and (value is None or not test(value, flt[op])):
            return False
    return True


def _metadata_matches(metadata: dict[str, str] | None, flt: Mapping[str, Any] | None) -> bool:
    if not flt:
        return True
    current: Any = metadata or {}
    for step in flt.get("path") or []:
        if isinstance(current, str):
            try:
                current = json.loads(current)
            except ValueError:
                return False
        if not isinstance(current, Mapping) or step not in current:
            return False
        current = current[step]
    if "equals" in flt:
        expected = flt["equals"]
        if isinstance(current, str) and not isinstance(expected, str):
            expected = json.dumps(expected, separators=(",", ":"), ensure_ascii=False)
        return current == expected
    return True


def _content_matches(content: StoredContent, where: Mapping[str, Any]) -> bool:
    return (
        _string_filter_matches(content.id, where.get("id"))
        and _string_filter_matches(content.key, where.get("key"))
        and _string_filter_matches(content.owner_id, where.get("ownerId"))
        and _string_filter_matches(content.owner_type, where.get("ownerType"))
        and _string_filter_matches(content.title, where.get("title"))
        and _metadata_matches(content.metadata, where.get("metadata"))
    )


def _scope_matches(scope: StoredScope, where: Mapping[str, Any]) -> bool:
    return (
        _string_filter_matches(scope.id, where.get("id"))
        and _string_filter_matches(scope.name, where.get("name"))
        and _string_filter_matches(scope.parent_id, where.get("parentId"))
        and _string_filter_matches(scope.external_id, where.get("externalId"))
    )
