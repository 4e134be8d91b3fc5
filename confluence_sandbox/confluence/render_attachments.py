"""JSON of attachments as DC/Server and Cloud v1 (content objects) and Cloud v2 (attachment items) render them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from confluence_sandbox.confluence.attachments import Attachment, AttachmentVersion, media_type_description
from confluence_sandbox.confluence.render import Renderer, utc

if TYPE_CHECKING:
    from confluence_sandbox.confluence.server import ConfluenceEmulator

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# What the child/attachment resource expands without being asked.
DEFAULT_EXPAND = frozenset({"metadata"})


class AttachmentRenderer:
    """Renders attachments for one emulator; reads its mode and knobs on every call."""

    def __init__(self, emulator: ConfluenceEmulator, renderer: Renderer) -> None:
        self._emulator = emulator
        self._renderer = renderer

    # -- addresses ---------------------------------------------------------------------------
    def rendered_id(self, attachment: Attachment) -> str:
        """`att123` everywhere, or `123` on DC when the emulator's `dc_attachment_ids` knob says "numeric"."""
        emulator = self._emulator
        if emulator.mode == "ONPREM" and emulator.dc_attachment_ids == "numeric":
            return attachment.numeric_id
        return attachment.id

    def download_path(
        self, attachment: Attachment, version: AttachmentVersion | None = None, *, v2: bool = False
    ) -> str:
        """`_links.download`: relative to `_links.base`, so without DC's context path and without Cloud's `/wiki`."""
        version = version or attachment.current
        millis = (version.when - EPOCH) // timedelta(milliseconds=1)
        cache = "&cacheVersion=1" if v2 else ""
        return (
            f"/download/attachments/{attachment.container.id}/{quote(attachment.title, safe='')}"
            f"?version={version.number}&modificationDate={millis}{cache}&api=v2"
        )

    def webui(self, attachment: Attachment) -> str:
        """The attachments page with a preview, which names the attachment by the numeric part of its id."""
        page_id = attachment.container.id
        preview = quote(f"/{page_id}/{attachment.numeric_id}/{attachment.title}", safe="")
        return f"/pages/viewpageattachments.action?pageId={page_id}&preview={preview}"

    # -- v1 ----------------------------------------------------------------------------------
    def content(self, attachment: Attachment, expand: set[str]) -> dict[str, Any]:
        """A v1 content object of type `attachment`; `extensions` and `_links.download` are always there."""
        emulator = self._emulator
        renderer = self._renderer
        links = emulator.links
        cloud = emulator.mode == "CLOUD"
        page = attachment.container
        space = emulator.wiki.spaces[page.space_key]
        rendered_id = self.rendered_id(attachment)
        wanted = {e.split(".", 1)[0] for e in expand}
        expandable: dict[str, str] = {
            "container": f"/rest/api/content/{page.id}",
            "metadata": "",
            "operations": "",
            "children": f"/rest/api/content/{rendered_id}/child",
            "restrictions": f"/rest/api/content/{rendered_id}/restriction/byOperation",
            "history": f"/rest/api/content/{rendered_id}/history",
            "ancestors": "",
            "body": "",
            "version": "",
            "descendants": f"/rest/api/content/{rendered_id}/descendant",
            "space": f"/rest/api/space/{space.key}",
        }
        content: dict[str, Any] = {
            "id": rendered_id,
            "type": "attachment",
            "status": attachment.status,
            "title": attachment.title,
        }
        if "space" in wanted:
            content["space"] = renderer.space(space)
        if "history" in wanted:
            content["history"] = {
                "latest": True,
                "createdBy": renderer.user(),
                "createdDate": renderer.time(attachment.created),
                "_links": {"self": f"{links.base}/rest/api/content/{rendered_id}/history"},
            }
        if "version" in wanted:
            version = renderer.version(attachment)  # type: ignore[arg-type]
            version["message"] = attachment.comment
            version["_links"]["self"] = (
                f"{links.base}/rest/experimental/content/{rendered_id}/version/{attachment.version}"
            )
            content["version"] = version
        if "container" in wanted:
            content["container"] = renderer.content(page, set())
        if "metadata" in wanted:
            metadata: dict[str, Any] = {"mediaType": attachment.media_type}
            if cloud:
                metadata.update({"comment": attachment.comment, "mediaTypeDescription": _description(attachment)})
            if "metadata.labels" in expand:
                labels = sorted(attachment.labels)
                metadata["labels"] = {
                    "results": [renderer.label(label) for label in labels],
                    "start": 0,
                    "limit": 200,
                    "size": len(labels),
                    "_links": {"self": f"{links.base}/rest/api/content/{rendered_id}/label"},
                }
            metadata["_expandable"] = {"currentuser": "", "properties": "", "frontend": "", "editorHtml": ""}
            if "labels" not in metadata:
                metadata["_expandable"]["labels"] = ""
            content["metadata"] = metadata
        extensions: dict[str, Any] = {
            "mediaType": attachment.media_type,
            "fileSize": attachment.size,
            "comment": attachment.comment,
        }
        if cloud:
            extensions.update(
                {
                    "mediaTypeDescription": _description(attachment),
                    "fileId": attachment.current.file_id,
                    "collectionName": f"contentId-{page.id}",
                }
            )
        content["extensions"] = extensions
        content["_links"] = {
            "webui": self.webui(attachment),
            "download": self.download_path(attachment),
            "self": f"{links.base}/rest/api/content/{rendered_id}",
        }
        if attachment.media_type.startswith("image/"):
            content["_links"]["thumbnail"] = self.download_path(attachment).replace("/attachments/", "/thumbnails/", 1)
        content["_expandable"] = {k: v for k, v in expandable.items() if k not in wanted}
        return content

    # -- v2 ----------------------------------------------------------------------------------
    def v2(self, attachment: Attachment) -> dict[str, Any]:
        """A Cloud v2 attachment item; `downloadLink` is relative to the site's `/wiki`."""
        page = attachment.container
        current = attachment.current
        download = self.download_path(attachment, v2=True)
        webui = self.webui(attachment)
        owner = "pageId" if page.type == "page" else "blogPostId"
        return {
            "id": attachment.id,
            "status": attachment.status,
            "title": attachment.title,
            "createdAt": utc(attachment.created),
            owner: page.id,
            "mediaType": attachment.media_type,
            "mediaTypeDescription": _description(attachment),
            "comment": attachment.comment,
            "fileId": current.file_id,
            "fileSize": attachment.size,
            "webuiLink": webui,
            "downloadLink": download,
            "version": {
                "createdAt": utc(current.when),
                "message": current.comment,
                "number": current.number,
                "minorEdit": False,
                "authorId": self._renderer.user()["accountId"],
            },
            "_links": {"webui": webui, "download": download},
        }


def _description(attachment: Attachment) -> str:
    return media_type_description(attachment.media_type)
