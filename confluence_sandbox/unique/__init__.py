"""A local fake of Unique's ingestion side (token, GraphQL, file-diff, uploads) for tests and the sandbox."""

from __future__ import annotations

from confluence_sandbox.unique.server import UniqueEmulator, graphql_error_fault
from confluence_sandbox.unique.store import (
    FileDiffReport,
    ScopeAccess,
    StoredContent,
    StoredScope,
    SubmittedFile,
    UniqueApiError,
    UniqueStore,
    UploadSlot,
)

__all__ = [
    "FileDiffReport",
    "ScopeAccess",
    "StoredContent",
    "StoredScope",
    "SubmittedFile",
    "UniqueApiError",
    "UniqueEmulator",
    "UniqueStore",
    "UploadSlot",
    "graphql_error_fault",
]
