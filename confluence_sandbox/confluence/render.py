"""JSON of content, spaces, labels, versions and users as DC/Server, Cloud v1 and Cloud v2 render them."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from confluence_sandbox.confluence.attachments import Attachment
from confluence_sandbox.confluence.wiki import Page, Space

if TYPE_CHECKING:
    from confluence_sandbox.confluence.server import ConfluenceEmulator


@dataclass(frozen=True)
class Links:
    """The `base` and `context` every `_links` block carries."""

    base: str
    context: str


class Renderer:
    """Renders wiki objects for one emulator; reads its mode and quirk knobs on every call, as they may change."""

    def __init__(self, emulator: ConfluenceEmulator, *, username: str | None) -> None:
        # Imported here because `render_attachments` builds on this module.
        from confluence_sandbox.confluence.render_attachments import AttachmentRenderer

        self._emulator = emulator
        self._username = username
        self.attachments = AttachmentRenderer(emulator, self)

    # -- v1 ----------------------------------------------------------------------------------
    def time(self, when: datetime) -> str:
        emulator = self._emulator
        if emulator.mode == "ONPREM":
            local = when.astimezone(timezone(timedelta(minutes=emulator.dc_time_offset_minutes)))
            return local.isoformat(timespec="milliseconds")
        return utc(when)

    def user(self) -> dict[str, Any]:
        if self._emulator.mode == "ONPREM":
            return {
                "type": "known",
                "username": self._username or "svc",
                "userKey": "8a7f808a8f1e2d3c018f1e2d3c4b0001",
                "displayName": "Service User",
                "_links": {"self": f"{self._emulator.api_root}/user?key=8a7f808a8f1e2d3c018f1e2d3c4b0001"},
            }
        return {
            "type": "known",
            "accountId": "557058:0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
            "accountType": "atlassian",
            "email": "",
            "publicName": "Service User",
            "displayName": "Service User",
        }

    def webui(self, page: Page) -> str:
        if self._emulator.mode == "ONPREM":
            return f"/pages/viewpage.action?pageId={page.id}"
        title = quote_plus(page.title)
        if page.type == "blogpost":
            day = page.created.astimezone(UTC)
            return f"/spaces/{page.space_key}/blog/{day:%Y/%m/%d}/{page.id}/{title}"
        return f"/spaces/{page.space_key}/pages/{page.id}/{title}"

    def space(self, space: Space) -> dict[str, Any]:
        webui = f"/display/{space.key}" if self._emulator.mode == "ONPREM" else f"/spaces/{space.key}"
        return {
            "id": space.id,
            "key": space.key,
            "name": space.name,
            "type": space.type,
            "status": space.status,
            "_links": {"webui": webui, "self": f"{self._emulator.links.base}/rest/api/space/{space.key}"},
            "_expandable": {
                "settings": f"/rest/api/space/{space.key}/settings",
                "metadata": "",
                "operations": "",
                "lookAndFeel": f"/rest/api/settings/lookandfeel?spaceKey={space.key}",
                "identifiers": "",
                "permissions": "",
                "icon": "",
                "description": "",
                "theme": f"/rest/api/space/{space.key}/theme",
                "history": "",
                "homepage": "",
            },
        }

    def label(self, label: str) -> dict[str, Any]:
        return {"prefix": "global", "name": label, "id": self._emulator.wiki.label_id(label), "label": label}

    def version(self, page: Page) -> dict[str, Any]:
        return {
            "by": self.user(),
            "when": self.time(page.when),
            "friendlyWhen": "a moment ago",
            "message": "",
            "number": page.version,
            "minorEdit": False,
            "_links": {
                "self": f"{self._emulator.links.base}/rest/experimental/content/{page.id}/version/{page.version}"
            },
        }

    def content(self, page: Page | Attachment, expand: set[str]) -> dict[str, Any]:
        if isinstance(page, Attachment):  # search results mix pages and attachments
            return self.attachments.content(page, expand)
        wiki = self._emulator.wiki
        links = self._emulator.links
        space = wiki.spaces[page.space_key]
        expandable: dict[str, str] = {
            "childTypes": "",
            "container": f"/rest/api/space/{space.key}",
            "metadata": "",
            "operations": "",
            "children": f"/rest/api/content/{page.id}/child",
            "restrictions": f"/rest/api/content/{page.id}/restriction/byOperation",
            "history": f"/rest/api/content/{page.id}/history",
            "ancestors": "",
            "body": "",
            "version": "",
            "descendants": f"/rest/api/content/{page.id}/descendant",
            "space": f"/rest/api/space/{space.key}",
        }
        content: dict[str, Any] = {"id": page.id, "type": page.type, "status": page.status, "title": page.title}

        # `space` is wanted for `space` and for `space.homepage`: the first segment of every expansion decides.
        wanted = {e.split(".", 1)[0] for e in expand}

        def wants(name: str) -> bool:
            return name in wanted

        if wants("space"):
            content["space"] = self.space(space)
        if wants("container"):
            content["container"] = self.space(space)
        if wants("history"):
            history: dict[str, Any] = {
                "latest": True,
                "createdBy": self.user(),
                "createdDate": self.time(page.created),
                "_links": {"self": f"{links.base}/rest/api/content/{page.id}/history"},
                "_expandable": {"lastUpdated": "", "previousVersion": "", "contributors": "", "nextVersion": ""},
            }
            if "history.lastUpdated" in expand:
                history["lastUpdated"] = self.version(page)
                del history["_expandable"]["lastUpdated"]
            content["history"] = history
        if wants("version"):
            content["version"] = self.version(page)
        if wants("ancestors"):
            content["ancestors"] = [self.content(a, set()) for a in page.ancestors(wiki)]
        if wants("metadata"):
            metadata: dict[str, Any] = {
                "_expandable": {
                    "currentuser": "",
                    "comments": "",
                    "simple": "",
                    "properties": "",
                    "frontend": "",
                    "labels": "",
                    "likes": "",
                }
            }
            if "metadata.labels" in expand:
                labels = sorted(page.labels)
                metadata["labels"] = {
                    "results": [self.label(label) for label in labels[:200]],
                    "start": 0,
                    "limit": 200,
                    "size": min(len(labels), 200),
                    "_links": {"self": f"{links.base}/rest/api/content/{page.id}/label"},
                }
                del metadata["_expandable"]["labels"]
            content["metadata"] = metadata
        if wants("body"):
            content["body"] = self._body(page, expand)
        if wants("children"):
            content["children"] = self._children(page, expand)
        content["extensions"] = {"position": page.position}
        content["_links"] = {
            "webui": self.webui(page),
            "edit": f"/pages/resumedraft.action?draftId={page.id}",
            "tinyui": tiny_link(page.id),
            "self": f"{links.base}/rest/api/content/{page.id}",
        }
        content["_expandable"] = {k: v for k, v in expandable.items() if not wants(k)}
        return content

    def _body(self, page: Page, expand: set[str]) -> dict[str, Any]:
        renderings = {
            "storage": page.body,
            "view": f'<div class="view">{page.body}</div>',
            "export_view": f'<div class="view">{page.body}</div>',
            "styled_view": f'<html><body><div class="view">{page.body}</div></body></html>',
            "editor": page.body,
            "anonymous_export_view": f'<div class="view">{page.body}</div>',
        }
        if self._emulator.mode == "CLOUD":
            renderings["atlas_doc_format"] = adf(page.body)
        body: dict[str, Any] = {}
        for name, value in renderings.items():
            if f"body.{name}" in expand:
                body[name] = {
                    "value": value,
                    "representation": name,
                    "_expandable": {"content": f"/rest/api/content/{page.id}"},
                }
        body["_expandable"] = {name: "" for name in renderings if name not in body}
        return body

    def _children(self, page: Page, expand: set[str]) -> dict[str, Any]:
        wiki = self._emulator.wiki
        children: dict[str, Any] = {}
        expandable = {
            "attachment": f"/rest/api/content/{page.id}/child/attachment",
            "comment": f"/rest/api/content/{page.id}/child/comment",
            "page": f"/rest/api/content/{page.id}/child/page",
        }
        for kind in list(expandable):
            if not any(e == f"children.{kind}" or e.startswith(f"children.{kind}.") for e in expand):
                continue
            found: list[Page] | list[Attachment] = []
            nested: set[str] = set()
            if kind == "page":
                found = [wiki.pages[c] for c in wiki.child_ids(page.id)]
                found = [c for c in found if c.status == "current" and wiki.is_visible(c)]
            if kind == "attachment":
                found = wiki.attachments_of(page.id)
                prefix = "children.attachment."
                nested = {"metadata"} | {e[len(prefix) :] for e in expand if e.startswith(prefix)}
            window = found[:25]
            listing: dict[str, Any] = {
                "results": [self.content(c, nested) for c in window],
                "start": 0,
                "limit": 25,
                "size": len(window),
                "_links": {"self": f"{self._emulator.links.base}{expandable[kind]}"},
            }
            if len(found) > 25:
                listing["_links"]["next"] = f"{expandable.pop(kind)}?limit=25&start=25"
            else:
                expandable.pop(kind)
            children[kind] = listing
        children["_expandable"] = expandable
        return children

    # -- v2 ----------------------------------------------------------------------------------
    def v2_label(self, label: str) -> dict[str, Any]:
        return {"id": self._emulator.wiki.label_id(label), "name": label, "prefix": "global"}

    def v2_space(self, space: Space) -> dict[str, Any]:
        return {
            "id": str(space.id),
            "key": space.key,
            "name": space.name,
            "type": space.type,
            "status": space.status,
            "authorId": self.user()["accountId"],
            "createdAt": utc(space.created),
            "homepageId": None,
            "description": None,
            "icon": None,
            "_links": {"webui": f"/spaces/{space.key}"},
        }

    def v2_content(self, page: Page, fmt: str | None, *, include_version: bool = True) -> dict[str, Any]:
        space = self._emulator.wiki.spaces[page.space_key]
        author = self.user()["accountId"]
        body: dict[str, Any] = {
            "id": page.id,
            "status": page.status,
            "title": page.title,
            "spaceId": str(space.id),
        }
        if page.type == "page":
            body.update(
                {
                    "parentId": page.parent_id,
                    "parentType": "page" if page.parent_id else None,
                    "position": page.position,
                }
            )
        body.update({"authorId": author, "ownerId": author, "createdAt": utc(page.created)})
        if include_version:
            body["version"] = {
                "createdAt": utc(page.when),
                "message": "",
                "number": page.version,
                "minorEdit": False,
                "authorId": author,
            }
        body["body"] = {}
        if fmt is not None:
            value = {
                "storage": page.body,
                "atlas_doc_format": adf(page.body),
            }.get(fmt, f'<div class="view">{page.body}</div>')
            body["body"] = {fmt: {"representation": fmt, "value": value}}
        body["_links"] = {
            "webui": self.webui(page),
            "editui": f"/pages/resumedraft.action?draftId={page.id}",
            "tinyui": tiny_link(page.id),
        }
        return body


def utc(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def adf(storage: str) -> str:
    """A trivial Atlassian Document Format rendering: one paragraph with the tag-stripped text."""
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", storage)).strip()
    paragraph: dict[str, Any] = {"type": "paragraph", "content": [{"type": "text", "text": text}] if text else []}
    return json.dumps({"type": "doc", "version": 1, "content": [paragraph]})


def tiny_link(page_id: str) -> str:
    """The `/x/…` short link: the page id's little-endian bytes, URL-safe base64 without padding."""
    raw = int(page_id).to_bytes(8, "little").rstrip(b"\0") or b"\0"
    return "/x/" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
