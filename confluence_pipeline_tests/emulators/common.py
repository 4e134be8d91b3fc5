"""What the emulator self-tests share: the credentials and headers the emulators accept, the contract's
`ContentUpsert` document, and httpx clients signed in to a Confluence emulator."""

from __future__ import annotations

from typing import Any

import httpx

from confluence_sandbox.confluence import ConfluenceEmulator

# The credentials a ConfluenceEmulator accepts unless told otherwise.
PAT = {"Authorization": "Bearer test-pat"}
CLOUD_AUTH = ("svc@example.com", "cloud-token")

# Pages labelled `ai-ingest`, attachments left out.
LABELLED = 'label = "ai-ingest" and type != attachment'

# A cluster-local caller's headers (instead of a token), naming the Unique emulator's default company and user.
CLUSTER_HEADERS = {"x-service-id": "confluence-connector", "x-company-id": "company-1", "x-user-id": "service-user-1"}

# Copied from /work/shared/contracts/unique-ingestion.md to the letter. The client's own
# `confluence_pipeline.clients.unique.CONTENT_UPSERT` adds a newline before and after, so it is not the same text.
CONTENT_UPSERT = """mutation ContentUpsert($input: ContentCreateInput!, $fileUrl: String, $chatId: String,
  $scopeId: String, $sourceOwnerType: String, $sourceName: String, $sourceKind: String,
  $storeInternally: Boolean, $baseUrl: String) {
  contentUpsert(input: $input, fileUrl: $fileUrl, chatId: $chatId, scopeId: $scopeId,
    sourceOwnerType: $sourceOwnerType, sourceName: $sourceName, sourceKind: $sourceKind,
    storeInternally: $storeInternally, baseUrl: $baseUrl) {
    id key title byteSize mimeType ownerType ownerId writeUrl readUrl createdAt
    internallyStoredAt source { kind name }
  }
}"""


def dc_client(emu: ConfluenceEmulator, **kw: Any) -> httpx.Client:
    """A client on a DC emulator's API root, signed in with the PAT."""
    return httpx.Client(base_url=emu.api_root, headers=PAT, **kw)


def client_for(emu: ConfluenceEmulator) -> httpx.Client:
    """A client on the emulator's API root, signed in the way its platform expects (PAT on DC, basic on Cloud)."""
    if emu.mode == "ONPREM":
        return httpx.Client(base_url=emu.api_root, headers=PAT)
    return httpx.Client(base_url=emu.api_root, auth=CLOUD_AUTH)
