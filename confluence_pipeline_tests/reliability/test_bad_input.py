"""Bad input: configuration, hostile labels, space keys and page ids, odd titles and bodies.

Bad configuration fails with one message naming every bad variable before any request; hostile names
stay literal all the way to Confluence and Unique; content survives byte for byte.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import confluence_pipeline.definitions as definitions_module
from confluence_pipeline.clients.confluence import ConfluenceClient, build_confluence_client
from confluence_pipeline.config.settings import ConfigurationError, load_settings
from confluence_pipeline.domain.cql import is_quotable
from confluence_pipeline.domain.models import SyncLabels
from confluence_pipeline.sync.discovery import discover_labelled
from confluence_pipeline_tests.support import (
    Sandbox,
    expected_state,
    failure_text,
    search_cql,
    unique_state,
)
from confluence_sandbox.confluence import ConfluenceEmulator

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
CONNECTOR_PREFIXES = ("CONFLUENCE_", "UNIQUE_", "ZITADEL_", "HTTP_", "INGEST_", "SYNC_", "TEST_MODE", "DEBUG_")
LOAD_VARIABLES = ("CRON_SCHEDULE", "CRON_TIMEZONE", "CHANGE_SENSOR_INTERVAL_SECONDS")


def start_cli_sync(env: dict[str, str], dagster_home: Path) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(CONNECTOR_PREFIXES) and k not in LOAD_VARIABLES}
    return subprocess.Popen(
        [DAGSTER, "job", "execute", "-m", "confluence_pipeline.definitions", "-j", "confluence_sync"],
        env={**clean, **env, "DAGSTER_HOME": str(dagster_home)},
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _named(output: str, expected: dict[str, str]) -> None:
    """One message, `Invalid configuration (N bad variables)`, with one line per bad variable saying why."""
    header = f"Invalid configuration ({len(expected)} bad variable{'s' if len(expected) > 1 else ''}):"
    assert header in output, output[-4000:]
    block = output[output.index(header) :].split("\n\n", 1)[0]
    named = {line.split(":", 1)[0].strip() for line in block.splitlines()[1:] if line.startswith("  ")}
    assert named == set(expected), block
    for name, reason in expected.items():
        assert f"  {name}: " in block and reason in block, (name, block)


# -- configuration through the CLI ---------------------------------------------------------------------
WRONG_EVERYWHERE = {
    "CONFLUENCE_INSTANCE_TYPE": ("SERVER", "'SERVER' is not one of ONPREM, CLOUD"),
    "CONFLUENCE_CLOUD_API_URL": ("api.atlassian.com", "scheme"),
    "CONFLUENCE_TOKENS_PER_MINUTE": ("250/min", "not a whole number"),
    "INGEST_SINGLE_LABEL": ("ai ingest", "not a valid Confluence label"),
    "INGEST_ALL_LABEL": ("ai\tingest", "not a valid Confluence label"),
    "UNIQUE_SERVICE_AUTH_MODE": ("oauth2", "not one of external, cluster_local"),
    "UNIQUE_SERVICE_EXTRA_HEADERS": ("{x-api-key: 1}", "not valid JSON"),
    "ZITADEL_SERVICE_EXTRA_HEADERS": ('{"x-zitadel-instance-host": 1}', "keys and values are strings"),
    "UNIQUE_SCOPE_PATH_TEMPLATE": ("Confluence/{space}", ""),
    "UNIQUE_TOKENS_PER_MINUTE": ("ten", "not a whole number"),
    "UNIQUE_CONCURRENCY": ("4.5", "not a whole number"),
    "ZITADEL_OAUTH_TOKEN_URL": ("id.example.com/oauth/v2/token", "scheme"),
    "SYNC_FAILURE_TOLERANCE": ("-1", "below the minimum"),
    "TEST_MODE": ("yes please", "not a boolean"),
    "DEBUG_MODE": ("2", "not a boolean"),
    "HTTP_TIMEOUT_SECONDS": ("2s", "not a whole number"),
    "HTTP_RETRY_AFTER_MAX_SECONDS": ("-1", "below the minimum"),
}
EMPTY_OR_SCHEMELESS_CLOUD = {
    "CONFLUENCE_URL": ("acme.atlassian.net", "scheme"),
    "CONFLUENCE_CLOUD_USER": ("", "required when CONFLUENCE_INSTANCE_TYPE is CLOUD"),
    "CONFLUENCE_CLOUD_TOKEN": ("", "required when CONFLUENCE_INSTANCE_TYPE is CLOUD"),
    "CONFLUENCE_CLOUD_ID": ("../../admin", "not a cloud id"),
    "UNIQUE_INGESTION_URL": ("//gateway.example/ingestion/v1/content", "scheme"),
    "UNIQUE_INGESTION_URL_GRAPHQL": ("", "required"),
    "ZITADEL_CLIENT_ID": ("", "required when UNIQUE_SERVICE_AUTH_MODE is external"),
    "ZITADEL_CLIENT_SECRET": ("", "required when UNIQUE_SERVICE_AUTH_MODE is external"),
    "ZITADEL_PROJECT_ID": ("", "required when UNIQUE_SERVICE_AUTH_MODE is external"),
}


@pytest.mark.slow
def test_bad_configuration_through_the_cli_one_message_naming_each_variable_exit_non_zero_no_request(
    onprem: Sandbox, cloud: Sandbox, tmp_path: Path
) -> None:
    # OnPrem: every variable wrong while the connection URLs stay valid and reachable, so zero requests
    # proves validation comes first. Cloud: empty values and URLs without scheme. Both run at once.
    runs = {
        "onprem": (onprem, WRONG_EVERYWHERE),
        "cloud": (cloud, EMPTY_OR_SCHEMELESS_CLOUD),
    }
    processes = {}
    for name, (box, bad) in runs.items():
        (tmp_path / name).mkdir()
        processes[name] = start_cli_sync({**box.env, **{k: v for k, (v, _) in bad.items()}}, tmp_path / name)
    outputs = {name: process.communicate(timeout=180)[0] for name, process in processes.items()}

    for name, (box, bad) in runs.items():
        assert processes[name].returncode != 0
        _named(outputs[name], {k: reason for k, (_, reason) in bad.items()})
        assert box.confluence.requests == [] and box.unique.requests == []


def test_bad_load_time_variables_are_all_named_in_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"CRON_SCHEDULE": "every day", "CRON_TIMEZONE": "Mars/Olympus", "CHANGE_SENSOR_INTERVAL_SECONDS": "soon"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        with pytest.raises(ValueError) as raised:  # what `dagster job execute` reports before exiting 1
            importlib.reload(definitions_module)
    finally:
        monkeypatch.undo()
        importlib.reload(definitions_module)

    assert all(f"{name}: " in str(raised.value) for name in env), str(raised.value)


# -- every variable on its own, through the job's resources --------------------------------------------
BAD_VALUES = [
    ("CONFLUENCE_INSTANCE_TYPE", "datacenter"),
    ("CONFLUENCE_INSTANCE_TYPE", ""),
    ("CONFLUENCE_URL", "wiki.example.com"),
    ("CONFLUENCE_URL", "https://wiki.example.com/?os_authType=basic"),
    ("CONFLUENCE_URL", ""),
    ("CONFLUENCE_PAT", ""),
    ("CONFLUENCE_CLOUD_API_URL", "ftp://api.atlassian.com"),
    ("CONFLUENCE_CLIENT_ID", "svc-client"),  # beside the PAT: two auth methods
    ("CONFLUENCE_OAUTH_TOKEN_URL", "id.example.com/token"),
    ("CONFLUENCE_OAUTH_SCOPES", 'READ "WRITE"'),
    ("CONFLUENCE_TOKENS_PER_MINUTE", "-1"),
    ("CONFLUENCE_TOKENS_PER_MINUTE", "1e3"),
    ("INGEST_SINGLE_LABEL", "two words"),
    ("INGEST_ALL_LABEL", "AI-INGEST"),  # the same label as INGEST_SINGLE_LABEL once lower-cased
    ("UNIQUE_INGESTION_URL", "gateway/ingestion/v1/content"),
    ("UNIQUE_INGESTION_URL_GRAPHQL", "graphql"),
    ("UNIQUE_SCOPE_PATH_TEMPLATE", "/Confluence/{unknown}"),
    ("UNIQUE_SERVICE_AUTH_MODE", "none"),
    ("UNIQUE_SERVICE_EXTRA_HEADERS", "x-api-key=1"),
    ("UNIQUE_SERVICE_EXTRA_HEADERS", '["x-api-key", "1"]'),
    ("UNIQUE_TOKENS_PER_MINUTE", "0.5"),
    ("UNIQUE_CONCURRENCY", "0"),
    ("UNIQUE_CONCURRENCY", "65"),
    ("ZITADEL_OAUTH_TOKEN_URL", "id.example.com"),
    ("ZITADEL_CLIENT_ID", ""),
    ("ZITADEL_CLIENT_SECRET", ""),
    ("ZITADEL_PROJECT_ID", ""),
    ("ZITADEL_SERVICE_EXTRA_HEADERS", "{"),
    ("SYNC_FAILURE_TOLERANCE", "many"),
    ("TEST_MODE", "1.0"),
    ("DEBUG_MODE", "enabled"),
    ("HTTP_TIMEOUT_SECONDS", "0"),
    ("HTTP_RETRY_AFTER_MAX_SECONDS", "a minute"),
]


@pytest.mark.parametrize(("variable", "value"), BAD_VALUES, ids=[f"{n}={v!r}" for n, v in BAD_VALUES])
def test_each_bad_variable_is_named_before_any_request(onprem: Sandbox, variable: str, value: str) -> None:
    onprem.set_env(**{variable: value})
    # A PAT alone makes basic-auth variables irrelevant; empty PAT needs them, so they are named too.
    # A client id beside the PAT is a second auth method: both are named.
    expected = {variable}
    if variable == "CONFLUENCE_PAT":
        expected |= {"CONFLUENCE_USERNAME", "CONFLUENCE_PASSWORD"}
    if variable == "CONFLUENCE_CLIENT_ID":
        expected |= {"CONFLUENCE_PAT"}

    result = onprem.run_sync(expect_success=False)

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "discover_labelled_pages"
    metadata = failure.step_failure_data.user_failure_data.metadata
    assert set(metadata["bad_variables"].value) == expected
    assert onprem.confluence.requests == [] and onprem.unique.requests == []


def test_an_unwritable_debug_log_file_is_named_before_any_request(onprem: Sandbox, tmp_path: Path) -> None:
    onprem.set_env(DEBUG_MODE="true", DEBUG_LOG_FILE=str(tmp_path / "missing-dir" / "debug.log"))

    result = onprem.run_sync(expect_success=False)

    text = failure_text(result)
    assert "Invalid configuration (1 bad variable)" in text and "DEBUG_LOG_FILE" in text, text
    assert onprem.confluence.requests == [] and onprem.unique.requests == []


# -- hostile label names -------------------------------------------------------------------------------
ALL_LABEL = "zz-tree-label"
_INJECTIONS = [
    '"',
    "\\",
    "'",
    "(",
    ")",
    ",",
    "=",
    "!=",
    "~",
    "*",
    "%",
    "&",
    "#",
    "?",
    "+",
    " OR ",
    "AND",
    "NOT",
    "IN",
    "label",
    "space.type",
    "ORDER BY",
    '") OR (label != "',
    "ai-ingest",
]
LABELS = (
    st.lists(st.one_of(st.sampled_from(_INJECTIONS), st.characters(codec="utf-8")), min_size=1, max_size=8)
    .map(lambda parts: "".join(parts).replace(" ", "").strip().lower())
    .filter(lambda label: label and is_quotable(label) and not any(ch.isspace() for ch in label))
    .filter(lambda label: label != ALL_LABEL)
)


@pytest.fixture(scope="module", params=["ONPREM", "CLOUD"])
def label_wiki(request: pytest.FixtureRequest) -> Iterator[tuple[ConfluenceEmulator, ConfluenceClient]]:
    """One emulator for every hypothesis example; each example adds its own pages."""
    with ConfluenceEmulator(mode=request.param, pat="pat-for-labels", cloud_token="tok-for-labels") as emulator:
        emulator.wiki.add_space("ENG", "Engineering")
        emulator.wiki.add_space("~jdoe", "Jane", type="personal")
        env = {
            "CONFLUENCE_INSTANCE_TYPE": request.param,
            "CONFLUENCE_URL": emulator.base_url,
            "CONFLUENCE_PAT": "pat-for-labels",
            "CONFLUENCE_CLOUD_USER": "svc@example.com",
            "CONFLUENCE_CLOUD_TOKEN": "tok-for-labels",
            "CONFLUENCE_TOKENS_PER_MINUTE": "0",
            "UNIQUE_INGESTION_URL": "http://127.0.0.1:9/v1/content",
            "UNIQUE_INGESTION_URL_GRAPHQL": "http://127.0.0.1:9/graphql",
            "UNIQUE_SERVICE_AUTH_MODE": "cluster_local",
            "UNIQUE_SERVICE_EXTRA_HEADERS": '{"x-company-id": "c", "x-user-id": "u"}',
        }
        client = build_confluence_client(load_settings(env).confluence)
        yield emulator, client
        client.close()


_counter = iter(range(10**9))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(label=LABELS)
def test_hostile_labels_match_exactly_their_pages(
    label_wiki: tuple[ConfluenceEmulator, ConfluenceClient], label: str
) -> None:
    emulator, client = label_wiki
    wiki = emulator.wiki
    n = next(_counter)
    try:
        single = load_settings(
            {
                "CONFLUENCE_INSTANCE_TYPE": "ONPREM",
                "CONFLUENCE_URL": "https://wiki.example",
                "CONFLUENCE_PAT": "x" * 8,
                "UNIQUE_INGESTION_URL": "https://u.example/v1/content",
                "UNIQUE_INGESTION_URL_GRAPHQL": "https://u.example/graphql",
                "UNIQUE_SERVICE_AUTH_MODE": "cluster_local",
                "UNIQUE_SERVICE_EXTRA_HEADERS": '{"x-company-id": "c", "x-user-id": "u"}',
                "INGEST_SINGLE_LABEL": label,
                "INGEST_ALL_LABEL": ALL_LABEL,
            }
        ).confluence.single_label
    except ConfigurationError:
        pytest.fail(f"a label without white space or control characters was refused: {label!r}")
    wiki.add_page("ENG", f"match {n}", labels=[single])
    wiki.add_page("~jdoe", f"personal {n}", labels=[single])  # personal spaces never
    for decoy in {single + "x", "x" + single, single.replace('"', ""), f'"{single}"', single[:-1] or "y"} - {single}:
        if decoy.strip() and not any(ch.isspace() for ch in decoy) and is_quotable(decoy):
            wiki.add_page("ENG", f"decoy {n} {len(decoy)} {abs(hash(decoy))}", labels=[decoy])

    pages, roots, _ = discover_labelled(client, SyncLabels(single, ALL_LABEL))

    expected = {p.id for p in wiki if p.space_key == "ENG" and (single in p.labels or ALL_LABEL in p.labels)}
    assert set(pages) == expected
    assert roots == []


@pytest.mark.parametrize(
    "label",
    ['x")or(label="ai-ingest', "ünïcödé-标签-🏷️", "or", "not", "\\\"'", "label=ai-ingest", "in(1,2)"],
)
def test_a_hostile_sync_label_through_a_real_sync(onprem: Sandbox, label: str) -> None:
    onprem.set_env(INGEST_SINGLE_LABEL=label)
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wanted = wiki.add_page("ENG", "Wanted", labels=[label, "faq"], body="<p>wanted</p>")
    wiki.add_page("ENG", "Default label only", labels=["ai-ingest"])
    wiki.add_page("ENG", "Other", labels=["faq"])

    onprem.run_sync()

    assert unique_state(onprem) == expected_state(onprem)
    assert set(unique_state(onprem)) == {onprem.key_of(wanted.id)}
    metadata = onprem.stored()[onprem.key_of(wanted.id)].metadata
    assert json.loads(metadata["confluenceLabels"]) == ["faq"]  # the sync label is removed, whatever it is


# -- hostile space keys and page ids ---------------------------------------------------------------------
HOSTILE_SPACES = {
    # key: (space id, page ids)
    "a-b": (None, ()),
    "a_b": (None, ()),  # sanitises like a-b: the mapping keys must still differ
    "ÄRGER": (None, ()),
    "OR": (None, ()),  # a CQL keyword
    "type": (None, ()),  # a name Dagster reserves
    "K" * 120: (None, ()),  # longer than a mapping key may be
    "X": (7, ("9007199254740993",)),  # 2^53 + 1: not exact as a JavaScript number
    "XY": (17, ("18446744073709551615",)),  # 2^64 - 1; and "7_X" is a substring of "17_XY"
}


def test_hostile_space_keys_and_page_ids_sync_delete_and_clean_up(onprem: Sandbox) -> None:
    onprem.set_env(UNIQUE_SCOPE_ID="")  # one scope per space: the keys also become scope paths and marks
    wiki = onprem.confluence.wiki
    wiki.add_space("~jane.doe@example.com", "Jane", type="personal")
    wiki.add_page("~jane.doe@example.com", "Private", labels=["ai-ingest"])
    ids: dict[str, list[str]] = {}
    for key, (space_id, page_ids) in HOSTILE_SPACES.items():
        wiki.add_space(key, f"Space {key[:10]}", space_id=space_id)
        ids[key] = [wiki.add_page(key, f"{key[:10]} one", labels=["ai-ingest"], page_id=pid).id for pid in page_ids]
        ids[key].append(wiki.add_page(key, f"{key[:10]} two", labels=["ai-ingest"]).id)

    onprem.run_sync()
    first = unique_state(onprem)
    assert first == expected_state(onprem) and len(first) == 10
    assert {k.split("/", 1)[0] for k in first} == {onprem.space_prefix(key) for key in HOSTILE_SPACES}
    paths = {onprem.unique.store.scope_path(c.owner_id) for c in onprem.stored().values()}
    assert paths == {f"/Confluence/{key}" for key in HOSTILE_SPACES}

    for page_id in ids["ÄRGER"]:  # a whole space loses its labels: cleaned up through its key
        wiki.remove_label(page_id, "ai-ingest")
    wiki.remove_label(ids["X"][0], "ai-ingest")  # one page of X; nothing of XY may go with it
    wiki.update_page(ids["XY"][0], body="<p>changed</p>")

    onprem.confluence.clear_requests()
    onprem.run_sync()

    final = unique_state(onprem)
    assert final == expected_state(onprem) and len(final) == 8
    assert final[onprem.key_of(ids["XY"][0])].data == b"<p>changed</p>"
    # The vanished space was looked up by its key (found visible), then confirmed label-free by CQL.
    lookups = [r for r in onprem.confluence.requests if r.path.startswith("/rest/api/space/")]
    assert [(r.path, r.status) for r in lookups] == [("/rest/api/space/ÄRGER", 200)]
    assert any('space = "ÄRGER"' in search_cql(r) for r in onprem.confluence.requests)


# -- odd characters in titles and bodies -----------------------------------------------------------------
ODD_TEXT = "".join(
    [
        "\ufeffBOM first;",
        "tab\there, CR\rLF\r\nLF\n, VT\x0b FF\x0c;",
        "DEL\x7f C1\x85\x9f;",
        "nbsp\u00a0 zwsp\u200b zwj\u200d rtl\u202eoverride\u202c;",
        "combining e\u0301 vs \u00e9 (no normalisation);",
        "line sep\u2028 para sep\u2029;",
        "emoji 👩🏽‍💻 flag 🇨🇭 astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 U+10FFFF \U0010ffff;",
        "private use \ue000 noncharacter \uffff \ufffe replacement \ufffd;",
        "full width ＡＢＣ CJK 日本語 Arabic مرحبا Hebrew שלום;",
        "quotes \"double\" 'single' `back` \\backslash\\ ;",
        "markup <b>&amp;&lt;&gt;&nbsp;&#x1F600;</b> ]]> <!-- c --> <?pi?> %00 %2F ${jndi:x} {{t}};",
        "surrogate-looking \\ud800 text",
    ]
)
ODD_BODY = (
    f"<h1>{ODD_TEXT}</h1><p>{ODD_TEXT}</p>"
    '<ac:structured-macro ac:name="code"><ac:plain-text-body><![CDATA['
    f"{ODD_TEXT}]]]]><![CDATA[>]]></ac:plain-text-body></ac:structured-macro>" + "x" * 70_000
)
ODD_TITLES = [
    "Tab\tand\nnewline in a title",
    "../../etc/passwd",
    "a/b\\c?d#e&f=g%20h",
    "👩🏽‍💻 e\u0301 \u202eevil\u202c",
    "<script>alert(1)</script>",
    "   leading and trailing   ",
]


def test_titles_and_bodies_with_every_odd_character_class_survive_byte_for_byte(sandbox: Sandbox) -> None:
    wiki = sandbox.confluence.wiki
    wiki.add_space("ENG", "Engine \u202e room 🚂")
    pages = [
        wiki.add_page("ENG", title, labels=["ai-ingest"], body=f"<p>{title}</p>{ODD_BODY}") for title in ODD_TITLES
    ]

    sandbox.run_sync()

    state = unique_state(sandbox)
    assert state == expected_state(sandbox)
    for page in pages:
        stored = sandbox.stored()[sandbox.key_of(page.id)]
        assert stored.title == page.title
        assert stored.data == page.body.encode("utf-8")
        assert stored.byte_size == len(page.body.encode("utf-8"))
        assert stored.metadata["spaceName"] == "Engine \u202e room 🚂"

    # Nothing about these characters makes a page look changed: the next run writes nothing.
    sandbox.unique.clear_requests()
    sandbox.run_sync()
    assert sandbox.unique_writes() == []


def test_version_times_with_odd_offsets_are_normalised_and_stable(onprem: Sandbox) -> None:
    onprem.confluence.dc_time_offset_minutes = -(9 * 60 + 30)  # a half-hour zone west of UTC
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    page = wiki.add_page("ENG", "Leap", labels=["ai-ingest"], when=datetime(2024, 2, 29, 23, 59, 59, 999000, UTC))

    onprem.run_sync()

    stored = onprem.stored()[onprem.key_of(page.id)]
    assert stored.metadata["lastModified"] == "2024-02-29T23:59:59.999Z"
    onprem.unique.clear_requests()
    onprem.run_sync()
    assert onprem.unique_writes() == []
