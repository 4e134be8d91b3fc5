"""Table-driven tests of the emulator's CQL parser and evaluator, and of invalid CQL through HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from confluence_pipeline_tests.emulators.common import PAT
from confluence_sandbox.confluence import (
    ConfluenceEmulator,
    CqlError,
    SearchScope,
    UnknownSpaceError,
    Wiki,
    evaluate,
    parse,
)
from confluence_sandbox.confluence.cql import And, Clause, Not, Or, Value


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def build_wiki() -> tuple[Wiki, dict[str, str]]:
    """Names -> ids, created in this order so default (id) order equals insertion order."""
    wiki = Wiki()
    wiki.add_space("OPS", "Operations")
    wiki.add_space("DEV", "Development")
    wiki.add_space("~jdoe", "Jane Doe", type="personal")
    wiki.add_space("TEAM", "Team", type="collaboration")
    wiki.add_space("SECRET", "Secret")
    ids: dict[str, str] = {}

    def add(name: str, space: str, title: str, *, parent: str | None = None, **kw: object) -> None:
        page = wiki.add_page(space, title, parent_id=ids[parent] if parent else None, **kw)  # type: ignore[arg-type]
        ids[name] = page.id

    add("root", "OPS", "Runbooks", labels=["ai-ingest-all"], when=_at("2024-05-01T08:00:00"), body="<p>index</p>")
    add("child", "OPS", "Restart the service", parent="root", labels=["How-To"], when=_at("2024-05-01T10:30:00"))
    add("grandchild", "OPS", "Deep detail", parent="child", when=_at("2024-05-02T00:00:00"), body="<p>kafka lag</p>")
    add("notes", "OPS", "Unlabelled notes", when=_at("2024-04-30T23:59:00"))
    add("arch", "DEV", "Architecture", labels=["ai-ingest", "design"], when=_at("2024-06-01T12:00:00"))
    add("blog", "DEV", "Release notes", type="blogpost", labels=["ai-ingest"], when=_at("2024-06-02T09:00:00"))
    add("uml", "DEV", 'Übersicht "quoted"', labels=["ÜNÏCODE"], when=_at("2024-06-03T09:00:00"))
    add("mine", "~jdoe", "My drafts", labels=["ai-ingest"], when=_at("2024-06-04T09:00:00"))
    add("board", "TEAM", "Team board", labels=["ai-ingest"], when=_at("2024-06-05T09:00:00"))
    add("trashed", "OPS", "Old runbook", labels=["ai-ingest"], when=_at("2024-06-06T09:00:00"))
    add("hidden", "DEV", "Restricted", labels=["ai-ingest"], when=_at("2024-06-07T09:00:00"))
    add("under_hidden", "DEV", "Below restricted", parent="hidden", labels=["ai-ingest"])
    add("secret", "SECRET", "Secret plan", labels=["ai-ingest"])
    wiki.trash_page(ids["trashed"])
    wiki.hide_page(ids["hidden"])
    wiki.hide_space("SECRET")
    return wiki, ids


WIKI, IDS = build_wiki()
NAMES = {page_id: name for name, page_id in IDS.items()}
ZURICH = ZoneInfo("Europe/Zurich")


def run(cql: str, *, platform: str = "ONPREM", tz: object = UTC, now: datetime | None = None) -> list[str]:
    scope = SearchScope(WIKI, platform, tz, "error", now)  # type: ignore[arg-type]
    return [NAMES[p.id] for p in evaluate(parse(cql), scope)]


ALL_VISIBLE = ["root", "child", "grandchild", "notes", "arch", "blog", "uml", "mine", "board"]

CASES: list[tuple[str, list[str]]] = [
    # label (stored lower-cased; comparison case-insensitive)
    ('label = "ai-ingest"', ["arch", "blog", "mine", "board"]),
    ("label = 'AI-INGEST-ALL'", ["root"]),
    ('label = "how-to"', ["child"]),
    ('label in ("design", "how-to")', ["child", "arch"]),
    ('space = OPS and label not in ("how-to", "ai-ingest-all")', ["grandchild", "notes"]),
    ('space = DEV and label != "design"', ["blog", "uml"]),
    # space, space.key, space.type
    ("space = OPS", ["root", "child", "grandchild", "notes"]),
    ("space = ops", ["root", "child", "grandchild", "notes"]),
    ('space.key in ("DEV", "~jdoe")', ["arch", "blog", "uml", "mine"]),
    ('label = "ai-ingest" and space != DEV', ["mine", "board"]),
    ('label = "ai-ingest" and space.type = global', ["arch", "blog"]),
    ('label = "ai-ingest" and space.type = personal', ["mine"]),
    ('label = "ai-ingest" and space.type = collaboration', []),  # DC knows no collaboration spaces
    ('label = "ai-ingest" and space.type in (global, personal)', ["arch", "blog", "mine"]),
    ('label = "ai-ingest" and space.type not in (global)', ["mine", "board"]),
    # type
    ("space = DEV and type = page", ["arch", "uml"]),
    ("space = DEV and type = blogpost", ["blog"]),
    ("type in (page, blogpost) and space = DEV", ["arch", "blog", "uml"]),
    ("space = DEV and type != attachment", ["arch", "blog", "uml"]),
    ("space = DEV and type not in (page)", ["blog"]),
    # id / content
    (f"id = {IDS['arch']}", ["arch"]),
    (f"id in ({IDS['notes']}, {IDS['root']}, {IDS['hidden']}, {IDS['trashed']})", ["root", "notes"]),
    (f"content = {IDS['blog']}", ["blog"]),
    (f"space = OPS and id != {IDS['root']}", ["child", "grandchild", "notes"]),
    (f"space = OPS and content not in ({IDS['root']}, {IDS['child']})", ["grandchild", "notes"]),
    # ancestor (all depths) and parent (direct children)
    (f"ancestor = {IDS['root']}", ["child", "grandchild"]),
    (f"ancestor in ({IDS['child']}, {IDS['arch']})", ["grandchild"]),
    (f"ancestor = {IDS['hidden']}", []),  # restrictions inherit
    (f"space = OPS and ancestor != {IDS['root']}", ["root", "notes"]),
    (f"parent = {IDS['root']}", ["child"]),
    (f"parent in ({IDS['root']}, {IDS['child']})", ["child", "grandchild"]),
    (f"space = OPS and parent not in ({IDS['root']})", ["root", "grandchild", "notes"]),
    # container: only attachments/comments have one
    (f"container = {IDS['root']}", []),
    (f"space = OPS and container != {IDS['root']}", ["root", "child", "grandchild", "notes"]),
    # title: exact (case-insensitive), IN, text match ~ and !~
    ('title = "runbooks"', ["root"]),
    ('title in ("Runbooks", "Architecture")', ["root", "arch"]),
    ('space = OPS and title != "Runbooks"', ["child", "grandchild", "notes"]),
    ('title ~ "service"', ["child"]),
    ('title ~ "run*"', ["root"]),
    ('space = OPS and title !~ "notes"', ["root", "child", "grandchild"]),
    ('text ~ "kafka"', ["grandchild"]),
    # quoting: escapes and unicode
    ('title = "Übersicht \\"quoted\\""', ["uml"]),
    ("title = 'Übersicht \"quoted\"'", ["uml"]),
    ('title = "\\u00dcbersicht \\"quoted\\""', ["uml"]),
    ('label = "ünïcode"', ["uml"]),
    ("label = ÜNÏCODE", ["uml"]),
    ("label = design", ["arch"]),
    # dates (server time zone UTC here)
    ('lastmodified > "2024/06/04 09:00"', ["board"]),
    ('lastmodified >= "2024/06/04 09:00"', ["mine", "board"]),
    ('lastmodified < "2024-05-01 10:30"', ["root", "notes"]),
    ('lastmodified <= "2024-05-01 10:30"', ["root", "child", "notes"]),
    ('lastmodified = "2024/05/01"', ["root", "child"]),
    ('space = OPS and lastmodified != "2024-05-01"', ["grandchild", "notes"]),
    ('lastModified >= "2024-06-03" and lastModified < "2024/06/05"', ["uml", "mine"]),
    ('lastmodified = "2024-05-01 10:30"', ["child"]),
    # AND binds tighter than OR; NOT tighter than AND; parentheses override
    ('label = "ai-ingest-all" or label = "ai-ingest" and space = DEV', ["root", "arch", "blog"]),
    ('(label = "ai-ingest-all" or label = "ai-ingest") and space = DEV', ["arch", "blog"]),
    ('label = "ai-ingest" and space = DEV or space = "~jdoe"', ["arch", "blog", "mine"]),
    ('label = "ai-ingest" and (space = DEV or space = "~jdoe")', ["arch", "blog", "mine"]),
    ('space = OPS and not label = "how-to" or label = design', ["root", "grandchild", "notes", "arch"]),
    ('space = OPS and not (label = "how-to" or label = "ai-ingest-all")', ["grandchild", "notes"]),
    ('space = OPS and not not label = "how-to"', ["child"]),
    (
        '((label = "ai-ingest") OR (label = "ai-ingest-all")) AND space.type = global AND type != attachment',
        ["root", "arch", "blog"],
    ),
    # keywords are case-insensitive; hidden spaces, hidden subtrees and trashed content never match
    ('LABEL = "ai-ingest" AnD SPACE = dev', ["arch", "blog"]),
    ("type in (page, blogpost)", ALL_VISIBLE),
    # ORDER BY
    ('label = "ai-ingest" order by lastmodified desc', ["board", "mine", "blog", "arch"]),
    ("space = OPS ORDER BY lastmodified ASC", ["notes", "root", "child", "grandchild"]),
    ("space = OPS order by title", ["grandchild", "child", "root", "notes"]),
    ("space = OPS order by title desc", ["notes", "root", "child", "grandchild"]),
    ("space = OPS order by id desc", ["notes", "grandchild", "child", "root"]),
    (
        "space in (OPS, DEV) order by type desc, title asc",
        ["arch", "grandchild", "child", "root", "notes", "uml", "blog"],
    ),
]


@pytest.mark.parametrize(("cql", "expected"), CASES, ids=[c[0] for c in CASES])
def test_evaluate(cql: str, expected: list[str]) -> None:
    assert run(cql) == expected


def test_collaboration_spaces_exist_on_cloud_only() -> None:
    cql = 'label = "ai-ingest" and space.type in (global, collaboration)'
    assert run(cql, platform="ONPREM") == ["arch", "blog"]
    assert run(cql, platform="CLOUD") == ["arch", "blog", "board"]


def test_date_literals_use_the_server_time_zone() -> None:
    # 12:30 in Zurich (CEST, UTC+2) is 10:30 UTC.
    assert run('lastmodified >= "2024/05/01 12:30" and space = OPS', tz=ZURICH) == ["child", "grandchild"]
    assert run('lastmodified >= "2024/05/01 12:30" and space = OPS', tz=UTC) == ["grandchild"]
    # the day 2024-05-02 in Zurich starts at 2024-05-01 22:00 UTC
    assert run('lastmodified = "2024-05-02" and space = OPS', tz=ZURICH) == ["grandchild"]
    assert run('lastmodified = "2024-05-01" and space = OPS', tz=ZURICH) == ["root", "child", "notes"]


def test_relative_date_functions() -> None:
    now = _at("2024-06-05T10:00:00")
    assert run('lastmodified > now("-2d")', now=now) == ["mine", "board"]
    assert run("lastmodified >= startOfDay()", now=now) == ["board"]
    assert run('lastmodified > now("-1w") and lastmodified < startOfDay("-1d")', now=now) == ["arch", "blog", "uml"]


def test_precedence_shapes_the_tree() -> None:
    where = parse("label = a or label = b and not label = c").where
    assert where == Or(
        (
            Clause("label", "=", (Value("a", False),)),
            And((Clause("label", "=", (Value("b", False),)), Not(Clause("label", "=", (Value("c", False),))))),
        )
    )


def test_unknown_space_key() -> None:
    with pytest.raises(UnknownSpaceError):
        run('space = "NOPE" and label = "ai-ingest"')
    with pytest.raises(UnknownSpaceError):  # a hidden space looks exactly like a missing one
        run("space = SECRET")
    scope = SearchScope(WIKI, "CLOUD", UTC, "empty")
    assert evaluate(parse('space in ("NOPE", "OPS") and label = "ai-ingest-all"'), scope)[0].id == IDS["root"]


INVALID = [
    "",
    "label = ai-ingest",  # unquoted hyphen
    'label = "ai-ingest" AND',
    'label = "ai-ingest" OR OR label = x',
    "(label = x",
    "label = x)",
    "label in ()",
    "label in (x,)",
    'label == "x"',
    'label = "unterminated',
    'nosuchfield = "x"',
    'label ~ "x"',  # ~ only for text fields
    'space.type > "global"',
    'text = "x"',
    'type != attachment and label = "x"',  # a negation cannot come first
    'not label = "x"',
    '(label not in ("x")) and space = OPS',
    'lastmodified > "2024-05-01T10:00:00Z"',  # ISO rejected
    'lastmodified > "2024-05-01T10:00"',
    'lastmodified > "01.05.2024"',
    'lastmodified > "2024/13/01"',
    "lastmodified > 2024",
    'lastmodified > bogus("-1d")',
    'lastmodified > now("yesterday")',
    "id = abc",
    'ancestor in ("12x")',
    "type = spaceship",
    'label = "x" order by label',
    'label = "x" order by',
    "order by title",
    'label = now("-1d")',
]


@pytest.mark.parametrize("cql", INVALID)
def test_invalid_cql_is_rejected_by_the_parser(cql: str) -> None:
    with pytest.raises(CqlError) as info:
        parse(cql)
    assert str(info.value) == f"Could not parse cql : {cql}"


@pytest.fixture(scope="module")
def dc() -> Iterator[ConfluenceEmulator]:
    with ConfluenceEmulator("ONPREM", wiki=WIKI) as emulator:
        yield emulator


@pytest.mark.parametrize("cql", [c for c in INVALID if c])
def test_invalid_cql_gives_the_dc_400_envelope(dc: ConfluenceEmulator, cql: str) -> None:
    response = httpx.get(f"{dc.api_root}/content/search", params={"cql": cql}, headers=PAT)
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "data": {"authorized": False, "valid": True, "allowedInReadOnlyMode": True, "errors": [], "successful": False},
        "message": f"Could not parse cql : {cql}",
        "reason": "Bad Request",
    }


def test_valid_cql_through_http_finds_the_same_pages(dc: ConfluenceEmulator) -> None:
    cql = '((label = "ai-ingest") OR (label = "ai-ingest-all")) AND space.type = global AND type != attachment'
    response = httpx.get(f"{dc.api_root}/content/search", params={"cql": cql}, headers=PAT)
    assert response.status_code == 200
    assert [NAMES[r["id"]] for r in response.json()["results"]] == ["root", "arch", "blog"]
