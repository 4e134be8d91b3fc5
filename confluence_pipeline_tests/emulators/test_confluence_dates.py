"""Server time zones and relative dates over real sockets: CQL date literals and functions, `version.when` offsets,
and `ORDER BY` on dates with `limit=1`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from confluence_pipeline_tests.emulators.common import client_for
from confluence_sandbox.confluence import ConfluenceEmulator, SearchScope, Wiki, evaluate, parse

ZURICH = "Europe/Zurich"  # UTC+2 in summer


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def dc() -> Iterator[ConfluenceEmulator]:
    """DC served at the server root, without the shared `dc`'s `/confluence` context path."""
    with ConfluenceEmulator("ONPREM") as emulator:
        yield emulator


def titles(client: httpx.Client, cql: str, **params: str) -> list[str]:
    response = client.get("/content/search", params={"cql": cql, "limit": "100", **params})
    assert response.status_code == 200, response.text
    return [r["title"] for r in response.json()["results"]]


# -- date literals are read in the server's zone, for every field and format ------------------------------------
LITERALS = [
    # (format, `>=` literal for 12:00 on 1 May, `=` literal for the day 2 May)
    ("yyyy/MM/dd HH:mm", "2024/05/01 12:00", None),
    ("yyyy-MM-dd HH:mm", "2024-05-01 12:00", None),
    ("yyyy/MM/dd", None, "2024/05/02"),
    ("yyyy-MM-dd", None, "2024-05-02"),
]


@pytest.mark.parametrize("field", ["lastmodified", "created"])
@pytest.mark.parametrize(("fmt", "at_noon", "day"), LITERALS, ids=[f[0] for f in LITERALS])
def test_date_literals_use_the_server_time_zone(
    dc: ConfluenceEmulator, field: str, fmt: str, at_noon: str | None, day: str | None
) -> None:
    wiki = dc.wiki
    wiki.add_space("OPS", "Operations")
    instants = {
        "morning": _at("2024-05-01T09:30:00"),  # 11:30 in Zurich
        "noon": _at("2024-05-01T10:30:00"),  # 12:30 in Zurich
        "late": _at("2024-05-01T23:00:00"),  # already 2 May in Zurich
    }
    other = _at("2020-01-01T00:00:00")
    for title, when in instants.items():
        # Only the field under test carries the interesting time; the other one is years away.
        page = wiki.add_page("OPS", title, when=when if field == "created" else other)
        if field == "lastmodified":
            wiki.update_page(page.id, when=when)
        else:
            wiki.update_page(page.id, when=_at("2025-01-01T00:00:00"))
    with client_for(dc) as client:
        if at_noon is not None:
            cql = f'{field} >= "{at_noon}" and space = OPS'
            assert titles(client, cql) == ["late"]
            dc.cql_timezone = ZURICH
            assert titles(client, cql) == ["noon", "late"]
        else:
            cql = f'{field} = "{day}" and space = OPS'
            assert titles(client, cql) == []
            dc.cql_timezone = ZURICH
            assert titles(client, cql) == ["late"]


def test_iso_date_literals_are_rejected(dc: ConfluenceEmulator) -> None:
    dc.wiki.add_space("OPS", "Operations")
    with client_for(dc) as client:
        response = client.get("/content/search", params={"cql": 'created > "2024-05-01T10:00:00Z"'})
    assert response.status_code == 400


# -- version.when and history.createdDate carry the DC server's offset; Cloud uses Z ----------------------------
@pytest.mark.parametrize(("offset", "suffix"), [(120, "+02:00"), (-330, "-05:30"), (0, "+00:00")])
def test_dc_times_carry_the_server_offset(dc: ConfluenceEmulator, offset: int, suffix: str) -> None:
    dc.dc_time_offset_minutes = offset
    dc.wiki.add_space("OPS", "Operations")
    page = dc.wiki.add_page("OPS", "Runbook", when=_at("2024-05-01T08:02:03.456"))
    dc.wiki.update_page(page.id, when=_at("2024-05-02T23:45:00"))
    with client_for(dc) as client:
        body = client.get(f"/content/{page.id}").json()
    when = datetime.fromisoformat(body["version"]["when"])
    created = datetime.fromisoformat(body["history"]["createdDate"])
    assert body["version"]["when"].endswith(suffix) and body["history"]["createdDate"].endswith(suffix)
    assert when.utcoffset() == timedelta(minutes=offset)
    assert when == _at("2024-05-02T23:45:00") and created == _at("2024-05-01T08:02:03.456")


def test_cloud_times_are_utc(cloud: ConfluenceEmulator) -> None:
    cloud.dc_time_offset_minutes = 120  # a DC knob: Cloud ignores it
    cloud.wiki.add_space("OPS", "Operations")
    page = cloud.wiki.add_page("OPS", "Runbook", when=_at("2024-05-01T08:02:03"))
    with client_for(cloud) as client:
        body = client.get(f"/content/{page.id}").json()
    assert body["version"]["when"] == "2024-05-01T08:02:03.000Z"


# -- relative date functions, evaluated in the server's zone ------------------------------------------------------
NOW = _at("2024-06-05T10:00:00")  # a Wednesday; 12:00 in Zurich


def seed_relative(wiki: Wiki) -> None:
    wiki.add_space("OPS", "Operations")
    # Created oldest first, so id order is time order.
    for title, when in [
        ("june-3-late", _at("2024-06-03T21:00:00")),  # 23:00 on 3 June in Zurich
        ("june-4-late", _at("2024-06-04T21:59:00")),  # 23:59 on 4 June in Zurich
        ("june-5-early", _at("2024-06-04T22:30:00")),  # 00:30 on 5 June in Zurich, still 4 June in UTC
        ("ten-minutes-ago", _at("2024-06-05T09:50:00")),
    ]:
        wiki.add_page("OPS", title, when=when)


ALL_FOUR = ["june-3-late", "june-4-late", "june-5-early", "ten-minutes-ago"]
RELATIVE_CASES: list[tuple[str, str, list[str]]] = [
    ('lastmodified > now("-15m")', ZURICH, ["ten-minutes-ago"]),
    ('lastmodified > now("-1h")', ZURICH, ["ten-minutes-ago"]),
    ('lastmodified > now("+1d")', ZURICH, []),
    ('lastmodified >= now("-1d")', ZURICH, ALL_FOUR[1:]),
    ("lastmodified >= startOfDay()", ZURICH, ["june-5-early", "ten-minutes-ago"]),
    ("lastmodified >= startOfDay()", "UTC", ["ten-minutes-ago"]),
    ('lastmodified >= startOfDay("-1d") and lastmodified < startOfDay()', ZURICH, ["june-4-late"]),
    ('lastmodified >= startOfDay("-1d") and lastmodified < startOfDay()', "UTC", ["june-4-late", "june-5-early"]),
    ('lastmodified <= endOfDay("-1d")', ZURICH, ["june-3-late", "june-4-late"]),
    ("lastmodified <= endOfDay()", ZURICH, ALL_FOUR),
    ('lastmodified > endOfDay("-2d")', ZURICH, ALL_FOUR[1:]),
    ("lastmodified >= startOfWeek()", ZURICH, ALL_FOUR),  # the week began on Sunday 2 June
    ('lastmodified < startOfWeek("+2d")', ZURICH, ["june-3-late"]),  # Tuesday 00:00
    ('lastmodified <= endOfWeek("-1w")', ZURICH, []),
    # The increment moves the boundary: startOfMonth("+3d") is 4 June 00:00, not the start of a later month.
    ('lastmodified >= startOfMonth("+3d")', ZURICH, ALL_FOUR[1:]),
    ('lastmodified >= startOfMonth("-1M") and lastmodified <= endOfMonth()', ZURICH, ALL_FOUR),
    ('lastmodified > endOfMonth("-1M")', ZURICH, ALL_FOUR),
    ("lastmodified >= startOfYear() and lastmodified <= endOfYear()", ZURICH, ALL_FOUR),
    ('lastmodified < startOfYear("-1y")', ZURICH, []),
    ('created >= startOfDay("-1d")', ZURICH, ALL_FOUR[1:]),
]


@pytest.mark.parametrize(("cql", "zone", "expected"), RELATIVE_CASES, ids=[f"{c[0]} [{c[1]}]" for c in RELATIVE_CASES])
def test_relative_date_functions_over_http(dc: ConfluenceEmulator, cql: str, zone: str, expected: list[str]) -> None:
    seed_relative(dc.wiki)
    dc.cql_now = NOW
    dc.cql_timezone = zone
    with client_for(dc) as client:
        assert titles(client, f"space = OPS and {cql}") == expected


@pytest.mark.parametrize(
    "cql",
    [
        'lastmodified >= startOfDay("+1")',  # the unit is required
        "lastmodified >= startOfDay(-1d)",  # the increment is a quoted string
        'lastmodified >= endOfDay("-1d", "-2d")',
        'lastmodified >= startOfFortnight("-1d")',
        'lastmodified >= now("-15s")',
    ],
)
def test_bad_date_function_calls_are_400(dc: ConfluenceEmulator, cql: str) -> None:
    dc.wiki.add_space("OPS", "Operations")
    with client_for(dc) as client:
        response = client.get("/content/search", params={"cql": f"space = OPS and {cql}"})
    assert response.status_code == 400
    assert response.json()["message"] == f"Could not parse cql : space = OPS and {cql}"


def test_month_increments_clamp_to_the_last_day() -> None:
    wiki = Wiki()
    wiki.add_space("OPS", "Operations")
    wiki.add_page("OPS", "april-30", when=_at("2024-04-30T12:00:00"))
    wiki.add_page("OPS", "may-1", when=_at("2024-05-01T12:00:00"))
    scope = SearchScope(wiki, "ONPREM", UTC, now=_at("2024-05-31T18:00:00"))
    found = evaluate(parse('lastmodified >= now("-1M")'), scope)  # 30 April 18:00, not an invalid 31 April
    assert [p.title for p in found] == ["may-1"]
    leap = SearchScope(wiki, "ONPREM", UTC, now=_at("2024-02-29T18:00:00"))
    assert [p.title for p in evaluate(parse('lastmodified < now("+1y")'), leap)] == ["april-30", "may-1"]


def test_dc_now_knob(dc: ConfluenceEmulator, cloud: ConfluenceEmulator) -> None:
    for emu in (dc, cloud):
        seed_relative(emu.wiki)
        emu.cql_now = NOW
    cql = 'space = OPS and lastmodified > now("-15m")'
    with client_for(dc) as client:
        assert titles(client, cql) == ["ten-minutes-ago"]  # accepted by default
        dc.dc_accepts_now = False
        refused = client.get("/content/search", params={"cql": cql})
        assert refused.status_code == 400 and refused.json()["message"] == f"Could not parse cql : {cql}"
        assert titles(client, 'space = OPS and lastmodified >= startOfDay("-1d")') == ALL_FOUR[1:]
    cloud.dc_accepts_now = False  # a DC knob: Cloud documents now()
    with client_for(cloud) as client:
        assert titles(client, cql) == ["ten-minutes-ago"]


# -- ORDER BY dates with limit=1 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["ONPREM", "CLOUD"])
def test_order_by_date_with_limit_1_returns_the_extreme_match(mode: str) -> None:
    with ConfluenceEmulator(mode) as emu:  # type: ignore[arg-type]
        wiki = emu.wiki
        wiki.add_space("OPS", "Operations")
        oldest_created = wiki.add_page("OPS", "first", labels=["x"], when=_at("2024-01-01T00:00:00"))
        newest_modified = wiki.add_page("OPS", "second", labels=["x"], when=_at("2024-02-01T00:00:00"))
        newest_created = wiki.add_page("OPS", "third", labels=["x"], when=_at("2024-03-01T00:00:00"))
        wiki.add_page("OPS", "unlabelled", when=_at("2024-12-01T00:00:00"))
        wiki.update_page(newest_modified.id, when=_at("2024-06-01T07:08:09.123"))
        wiki.update_page(oldest_created.id, when=_at("2024-05-01T00:00:00"))
        expected_when = {
            "ONPREM": "2024-06-01T09:08:09.123+02:00",
            "CLOUD": "2024-06-01T07:08:09.123Z",
        }[mode]
        cases = [
            ("lastmodified desc", newest_modified.id),
            ("lastModified DESC", newest_modified.id),
            ("lastmodified asc", newest_created.id),
            ("created desc", newest_created.id),
            ("created", oldest_created.id),
        ]
        with client_for(emu) as client:
            for order, expected in cases:
                body = client.get(
                    "/content/search",
                    params={"cql": f'label = "x" order by {order}', "limit": "1", "expand": "version"},
                ).json()
                assert [r["id"] for r in body["results"]] == [expected], order
                assert "next" in body["_links"]
            newest = client.get(
                "/content/search",
                params={"cql": 'label = "x" order by lastmodified desc', "limit": "1", "expand": "version"},
            ).json()["results"][0]
    assert newest["version"]["when"] == expected_when
    assert datetime.fromisoformat(newest["version"]["when"]) == _at("2024-06-01T07:08:09.123")
