"""The emulator's GraphQL endpoint: the SDL schema bound to resolvers over `UniqueStore`, plus the error shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from http import HTTPStatus
from importlib import resources
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    OperationDefinitionNode,
    StringValueNode,
    build_schema,
    execute_sync,
    get_operation_ast,
    parse,
    validate,
    value_from_ast_untyped,
)
from graphql.language.ast import FieldNode, ValueNode

from confluence_sandbox.unique.store import (
    DeletedFolder,
    ScopeAccess,
    StoredContent,
    StoredScope,
    UniqueApiError,
    UniqueStore,
    UploadSlot,
)

_ERROR_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND", 409: "CONFLICT"}


@dataclass(frozen=True)
class GraphQLContext:
    store: UniqueStore
    blob_upload_url: str  # writeUrls are this plus `?key=`
    user_id: str
    company_id: str
    check_byte_size: bool = True
    max_delete_ids: int | None = None


# -- scalars -------------------------------------------------------------------------------
def _serialize_datetime(value: Any) -> str:
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


def parse_datetime(value: Any) -> datetime:
    """ISO-8601 with or without `Z`; naive times are taken as UTC."""
    if not isinstance(value, str):
        raise TypeError(f"DateTime must be an ISO-8601 string, got {value!r}")
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_datetime_literal(node: ValueNode, _variables: Any = None) -> datetime:
    if not isinstance(node, StringValueNode):
        raise TypeError("DateTime literal must be a string")
    return parse_datetime(node.value)


# -- node shapes ---------------------------------------------------------------------------
def _content_node(content: StoredContent, slot: UploadSlot | None = None, blob_upload_url: str = "") -> dict[str, Any]:
    stored_at = content.finalized_at if content.store_internally and content.sha256 is not None else None
    return {
        "id": content.id,
        "key": content.key,
        "title": content.title,
        "mimeType": content.mime_type,
        "ownerType": content.owner_type,
        "ownerId": content.owner_id,
        "url": content.url,
        "byteSize": content.byte_size,
        "metadata": content.metadata,
        "fileAccess": [],
        "expiresAt": content.expires_at,
        "ingestionState": content.ingestion_state,
        "createdAt": content.created_at,
        "updatedAt": content.updated_at,
        "internallyStoredAt": stored_at,
        "writeUrl": f"{blob_upload_url}?key={slot.write_key}" if slot else None,
        "readUrl": slot.read_url if slot else None,
        "source": {"kind": content.source_kind, "name": content.source_name, "ownerType": content.source_owner_type},
    }


def _scope_node(scope: StoredScope) -> dict[str, Any]:
    return {
        "id": scope.id,
        "name": scope.name,
        "parentId": scope.parent_id,
        "externalId": scope.external_id,
        "createdAt": scope.created_at,
        "scopeAccess": [
            {"entityId": a.entity_id, "type": a.access_type, "entityType": a.entity_type} for a in scope.accesses
        ],
    }


def _folder_node(folder: DeletedFolder) -> dict[str, Any]:
    node: dict[str, Any] = {"id": folder.id, "name": folder.name, "path": folder.path}
    if folder.fail_reason is not None:
        node["failReason"] = folder.fail_reason
    return node


def _page(items: list[Any], skip: int | None, take: int | None) -> list[Any]:
    skip = skip or 0
    if skip < 0 or (take is not None and take < 0):
        raise UniqueApiError(400, "skip and take must not be negative")
    return items[skip:] if take is None else items[skip : skip + take]


# -- resolvers -----------------------------------------------------------------------------
def _ctx(info: GraphQLResolveInfo) -> GraphQLContext:
    return info.context


def _resolve_paginated_content(
    _root: Any, info: GraphQLResolveInfo, skip: int | None = None, take: int | None = None, where: Any = None
) -> dict[str, Any]:
    matches = _ctx(info).store.query_contents(where)
    return {"nodes": [_content_node(c) for c in _page(matches, skip, take)], "totalCount": len(matches)}


def _resolve_paginated_scope(
    _root: Any, info: GraphQLResolveInfo, where: Mapping[str, Any], skip: int | None = None, take: int | None = None
) -> dict[str, Any]:
    matches = _ctx(info).store.query_scopes(where)
    return {"nodes": [_scope_node(s) for s in _page(matches, skip, take)], "totalCount": len(matches)}


def _resolve_me(_root: Any, info: GraphQLResolveInfo) -> dict[str, Any]:
    ctx = _ctx(info)
    return {"user": {"id": ctx.user_id, "companyId": ctx.company_id}}


def _resolve_content_upsert(
    _root: Any,
    info: GraphQLResolveInfo,
    input: Mapping[str, Any],  # noqa: A002 - GraphQL argument name
    fileUrl: str | None = None,
    scopeId: str | None = None,
    sourceOwnerType: str | None = None,
    sourceName: str | None = None,
    sourceKind: str | None = None,
    storeInternally: bool | None = None,
    **_ignored: Any,  # chatId, baseUrl: accepted, not modelled
) -> dict[str, Any]:
    ctx = _ctx(info)
    owner_type = input.get("ownerType") or "SCOPE"
    if owner_type == "SCOPE" and not scopeId:
        raise UniqueApiError(400, "scopeId is required for ownerType SCOPE")
    fields = {
        "key": input["key"],
        "title": input.get("title"),
        "mime_type": input["mimeType"],
        "owner_type": owner_type,
        "url": input.get("url"),
        "byte_size": input.get("byteSize"),
        "metadata": input.get("metadata"),
        "ingestion_config": input.get("ingestionConfig"),
        "expires_at": input.get("expiresAt"),
        "owner_id": scopeId,
        "source_kind": sourceKind,
        "source_name": sourceName,
        "source_owner_type": sourceOwnerType,
        "store_internally": True if storeInternally is None else storeInternally,
    }
    if fileUrl is None:
        content, slot = ctx.store.register_content(fields)
    else:
        content, slot = ctx.store.finalize_content(fileUrl, fields, check_byte_size=ctx.check_byte_size)
    return _content_node(content, slot, ctx.blob_upload_url)


def _resolve_delete_by_ids(_root: Any, info: GraphQLResolveInfo, contentIds: list[str]) -> list[dict[str, Any]]:
    ctx = _ctx(info)
    if ctx.max_delete_ids is not None and len(contentIds) > ctx.max_delete_ids:
        # Refused as a whole, like a DTO validation error: nothing of the batch is deleted.
        raise UniqueApiError(400, f"contentIds must contain no more than {ctx.max_delete_ids} elements")
    return [_content_node(c) for c in ctx.store.delete_contents(contentIds)]


def _resolve_content_delete(_root: Any, info: GraphQLResolveInfo, id: str) -> bool:  # noqa: A002
    return bool(_ctx(info).store.delete_contents([id]))


def _resolve_content_update(
    _root: Any,
    info: GraphQLResolveInfo,
    contentId: str,
    input: Mapping[str, Any],  # noqa: A002
    ownerId: str | None = None,
) -> dict[str, Any]:
    changes = {
        {"expiresAt": "expires_at"}.get(name, name): value
        for name, value in input.items()
        if name in ("url", "title", "expiresAt", "metadata")
    }
    return _content_node(_ctx(info).store.update_content(contentId, owner_id=ownerId, changes=changes))


def _resolve_generate_scopes(
    _root: Any,
    info: GraphQLResolveInfo,
    paths: list[str],
    inheritAccess: bool | None = None,
) -> list[dict[str, Any]]:
    scopes = _ctx(info).store.generate_scopes(paths, inherit_access=bool(inheritAccess))
    return [_scope_node(s) for s in scopes]


def _access_resolver(grant: bool) -> Any:
    def resolve(
        _root: Any,
        info: GraphQLResolveInfo,
        scopeId: str,
        scopeAccesses: list[Mapping[str, Any]],
        applyToSubScopes: bool | None = None,
        **_ignored: Any,  # skipFileAccessPropagation: there is no file access to propagate here
    ) -> bool:
        accesses = [ScopeAccess(a["entityId"], a["entityType"], a["accessType"]) for a in scopeAccesses]
        _ctx(info).store.change_accesses(scopeId, accesses, grant=grant, apply_to_sub_scopes=bool(applyToSubScopes))
        return True

    return resolve


def _resolve_update_scope(
    _root: Any,
    info: GraphQLResolveInfo,
    id: str,  # noqa: A002
    input: Mapping[str, Any],  # noqa: A002
) -> dict[str, Any]:
    return _scope_node(_ctx(info).store.update_scope(id, input))


def _resolve_delete_folder(
    _root: Any, info: GraphQLResolveInfo, scopeId: str, recursive: bool | None = None
) -> dict[str, Any]:
    folders = _ctx(info).store.delete_folder(scopeId, recursive=bool(recursive))
    return {
        "successFolders": [_folder_node(f) for f in folders if f.fail_reason is None],
        "failedFolders": [_folder_node(f) for f in folders if f.fail_reason is not None],
    }


@cache
def unique_schema() -> GraphQLSchema:
    """The executable schema (built once; resolvers are stateless and read the store from the context)."""
    sdl = resources.files("confluence_sandbox.unique").joinpath("schema.graphql").read_text("utf-8")
    schema = build_schema(sdl)
    json_scalar = schema.type_map["JSON"]
    json_scalar.serialize = lambda value: value  # type: ignore[method-assign]
    json_scalar.parse_value = lambda value: value  # type: ignore[method-assign]
    json_scalar.parse_literal = value_from_ast_untyped  # type: ignore[method-assign]
    datetime_scalar = schema.type_map["DateTime"]
    datetime_scalar.serialize = _serialize_datetime  # type: ignore[method-assign]
    datetime_scalar.parse_value = parse_datetime  # type: ignore[method-assign]
    datetime_scalar.parse_literal = _parse_datetime_literal  # type: ignore[method-assign]

    assert schema.query_type is not None and schema.mutation_type is not None
    query = schema.query_type.fields
    query["paginatedContent"].resolve = _resolve_paginated_content
    query["paginatedScope"].resolve = _resolve_paginated_scope
    query["me"].resolve = _resolve_me
    mutation = schema.mutation_type.fields
    mutation["contentUpsert"].resolve = _resolve_content_upsert
    mutation["contentDeleteByContentIds"].resolve = _resolve_delete_by_ids
    mutation["contentDelete"].resolve = _resolve_content_delete
    mutation["contentUpdate"].resolve = _resolve_content_update
    mutation["generateScopesBasedOnPaths"].resolve = _resolve_generate_scopes
    mutation["createScopeAccesses"].resolve = _access_resolver(grant=True)
    mutation["deleteScopeAccesses"].resolve = _access_resolver(grant=False)
    mutation["updateScope"].resolve = _resolve_update_scope
    mutation["deleteFolder"].resolve = _resolve_delete_folder
    return schema


# -- errors and execution ------------------------------------------------------------------
def error_entry(message: str, status: int, code: str, path: list[str | int] | None = None) -> dict[str, Any]:
    """One entry of `errors` in the shape the contract's fixtures show (§2)."""
    return {
        "message": message,
        "path": path,
        "extensions": {
            "code": code,
            "response": {"statusCode": status, "message": message, "error": HTTPStatus(status).phrase},
        },
    }


def _format_error(error: GraphQLError, default_code: str) -> dict[str, Any]:
    original = error.original_error
    path = list(error.path) if error.path else None
    if isinstance(original, UniqueApiError):
        return error_entry(original.message, original.status, _ERROR_CODES.get(original.status, "BAD_REQUEST"), path)
    if original is None or error.path is None:  # invalid document or variables, caught before any resolver ran
        return error_entry(error.message, 400, default_code, path)
    entry = error_entry("Internal server error", 500, "INTERNAL_SERVER_ERROR", path)
    entry["extensions"]["response"]["message"] = f"emulator error: {original!r}"
    return entry


def error_response(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"data": None, "errors": errors}


def operation_label(document: DocumentNode, operation_name: str | None) -> str:
    """What `UniqueEmulator.operations` counts: the operation's name, else its first field."""
    if operation_name:
        return operation_name
    operation = get_operation_ast(document)
    if not isinstance(operation, OperationDefinitionNode):
        return "<unknown>"
    if operation.name is not None:
        return operation.name.value
    first = operation.selection_set.selections[0] if operation.selection_set.selections else None
    return first.name.value if isinstance(first, FieldNode) else "<anonymous>"


@lru_cache(maxsize=256)
def _parse_cached(query: str) -> DocumentNode:
    # A client sends the same few documents over and over; parsing and validating each one again cost
    # ~8 ms, which made the emulator, not the client, the bottleneck of every benchmark. Errors are not cached.
    return parse(query)


_validated: dict[int, tuple[DocumentNode, list[GraphQLError]]] = {}  # id(document) -> (document kept alive, errors)


def _validation_errors(schema: GraphQLSchema, document: DocumentNode) -> list[GraphQLError]:
    cached = _validated.get(id(document))
    if cached is not None and cached[0] is document:
        return cached[1]
    errors = validate(schema, document)
    if len(_validated) >= 512:
        _validated.clear()
    _validated[id(document)] = (document, errors)
    return errors


def parse_document(query: str) -> DocumentNode | dict[str, Any]:
    """The parsed document, or a ready error body when it does not parse."""
    try:
        return _parse_cached(query)
    except GraphQLError as error:
        return error_response([_format_error(error, "GRAPHQL_PARSE_FAILED")])


def run_document(
    document: DocumentNode, variables: Mapping[str, Any] | None, operation_name: str | None, context: GraphQLContext
) -> dict[str, Any]:
    schema = unique_schema()
    validation_errors = _validation_errors(schema, document)
    if validation_errors:
        return error_response([_format_error(e, "GRAPHQL_VALIDATION_FAILED") for e in validation_errors])
    result = execute_sync(
        schema, document, variable_values=dict(variables or {}), operation_name=operation_name, context_value=context
    )
    if result.errors:  # the contract shape: data is null whenever something failed
        return error_response([_format_error(e, "BAD_USER_INPUT") for e in result.errors])
    return {"data": result.data}
