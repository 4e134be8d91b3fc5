"""No secret leaks: not to stdout/stderr, the debug log, exception messages, alert payloads or DAGSTER_HOME.

Distinctive values for every credential, plus the bearer tokens both emulators issued during the run, through
normal runs (one whose Confluence OAuth token expires mid-run) and failing runs whose servers echo the
credentials back; TLS is verified.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import dagster as dg
import pytest
import trustme

from confluence_pipeline.alerts import build_failure_report
from confluence_pipeline.config.settings import scrubber_for_variables
from confluence_pipeline.jobs.sync import confluence_sync
from confluence_pipeline.resources import resources_from_env
from confluence_pipeline_tests.support import (
    CLOUD_TOKEN,
    JSON,
    OAUTH_CLIENT_ID,
    OAUTH_CLIENT_SECRET,
    PASSWORD,
    PAT,
    ZITADEL_SECRET,
    Sandbox,
    base_env,
    failure_text,
    oauth_env,
    stored_bytes,
    unique_state,
)
from confluence_sandbox.http import Fault, Request
from confluence_sandbox.unique import UniqueEmulator

REPO_ROOT = Path(__file__).resolve().parents[2]
HEADER_SECRET = "hdr-Secret-Api-Key-4711"
USERNAME = "svc"
CLOUD_USER = "svc@example.com"
WRONG_CLIENT_SECRET = "wrong+Oauth/Secret=1357"  # characters that URL and form encoding change
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")


def _b64(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


# Every form a credential travels in: raw, inside the Basic headers built from it, and form-encoded.
STATIC_SECRETS = [
    PAT,
    PASSWORD,
    CLOUD_TOKEN,
    ZITADEL_SECRET,
    HEADER_SECRET,
    _b64(USERNAME, PASSWORD),
    _b64(CLOUD_USER, CLOUD_TOKEN),
    _b64("connector", ZITADEL_SECRET),
    *{form for secret in (OAUTH_CLIENT_SECRET, WRONG_CLIENT_SECRET) for form in (secret, quote(secret, safe=""))},
    quote_plus(WRONG_CLIENT_SECRET),
]


ECHOED: list[str] = []  # the credentials the echoing faults below sent back, for the test to check


def echoing(
    status: int, template: str, predicate: Callable[[Request], bool] = lambda _: True
) -> tuple[Fault, Callable[[Request], bool]]:
    """A fault whose body repeats the request's Authorization header wherever `template` says `{auth}`."""
    fault = Fault(status, dict(JSON), b"")

    def when(request: Request) -> bool:
        if not predicate(request):
            return False
        credential = request.headers.get("authorization", "")
        fault.body = template.replace("{auth}", credential).encode()
        ECHOED.append(credential)
        return True

    return fault, when


def _operation(name: str) -> Callable[[Request], bool]:
    return lambda r: r.path.endswith("/graphql") and (r.json() or {}).get("operationName") == name


@dataclass(frozen=True)
class Case:
    mode: str
    env: dict[str, str | None]
    arm: Callable[[Sandbox], None]
    failure: str = ""  # empty: the run succeeds
    gets_token: bool = True  # whether the run gets as far as a Zitadel token
    oauth: bool = False  # Confluence through the emulator's OAuth service account
    oauth_tokens: int = 0  # how many Confluence OAuth tokens the run gets


def _nothing(_: Sandbox) -> None:
    return None


def _confluence_401_echo(box: Sandbox) -> None:
    fault, when = echoing(401, '{"statusCode":401,"message":"Bad credentials: {auth}","reason":"Unauthorized"}')
    box.confluence.faults.add(r"/content/search$", fault, times=None, when=when)


def _graphql_echo_on_register(box: Sandbox) -> None:
    message = "Forbidden for request with headers {authorization: {auth}}"
    body = {
        "data": None,
        "errors": [
            {
                "message": message,
                "path": ["contentUpsert"],
                "extensions": {"code": "FORBIDDEN", "response": {"statusCode": 403, "message": message}},
            }
        ],
    }
    fault, when = echoing(200, json.dumps(body), _operation("ContentUpsert"))
    box.unique.faults.add(r"/graphql$", fault, times=None, when=when)


def _file_diff_400_echo(box: Sandbox) -> None:
    fault, when = echoing(400, '{"statusCode":400,"message":"rejected {auth}","error":"Bad Request"}')
    box.unique.faults.add(r"/file-diff$", fault, times=None, when=when)


def _oauth_token_401_echo(box: Sandbox) -> None:
    """The token endpoint refuses the client and repeats the request body, client secret and all."""
    fault = Fault(401, dict(JSON), b"")

    def when(request: Request) -> bool:
        body = request.body.decode()
        fault.body = json.dumps({"error": "invalid_client", "error_description": f"refused {body}"}).encode()
        ECHOED.append(body)
        return True

    box.confluence.faults.add(r"/(oauth2/latest|oauth)/token$", fault, times=None, when=when)


def _oauth_token_expires_mid_run(box: Sandbox) -> None:
    skew = [0.0]
    box.confluence.oauth.clock = lambda: time.monotonic() + skew[0]

    def expire(served: int) -> None:
        if served == 1:
            skew[0] += 2 * box.confluence.oauth_token_ttl

    box.confluence.between_search_pages = expire


def _zitadel_401_echo(box: Sandbox) -> None:
    fault, when = echoing(401, f'{{"error":"invalid_client","error_description":"{{auth}} / {ZITADEL_SECRET}"}}')
    box.unique.faults.add(r"/oauth/v2/token$", fault, times=None, when=when)


MEDIA_TOKENS: list[str] = []  # the signed download tokens Cloud's media host saw, and echoed back


def _media_host_echoing_its_token(box: Sandbox) -> None:
    """A failing download whose error repeats the signed URL and the token it carried."""
    box.set_env(CONFLUENCE_ATTACHMENTS="true")
    page = next(iter(box.confluence.wiki))
    box.confluence.wiki.add_attachment(page.id, "spec.pdf", b"%PDF secret file")
    fault = Fault(500, dict(JSON), b"")

    def when(request: Request) -> bool:
        token = request.param("token") or ""
        MEDIA_TOKENS.append(token)
        ECHOED.append(token)
        fault.body = json.dumps({"error": {"title": f"bad {request.raw_target} token={token} / {token}"}}).encode()
        return True

    assert box.confluence.media is not None
    box.confluence.media.faults.add(r"/binary$", fault, times=None, when=when)


BASIC = {"CONFLUENCE_PAT": None, "CONFLUENCE_USERNAME": USERNAME, "CONFLUENCE_PASSWORD": PASSWORD}
CASES = {
    "onprem-pat-normal-run": Case("ONPREM", {}, _nothing),
    "cloud-normal-run": Case("CLOUD", {}, _nothing),
    "onprem-basic-401-echoing-credentials": Case("ONPREM", BASIC, _confluence_401_echo, "HTTP 401", False),
    "cloud-401-echoing-credentials": Case("CLOUD", {}, _confluence_401_echo, "HTTP 401", False),
    "graphql-error-echoing-bearer-token": Case("ONPREM", {}, _graphql_echo_on_register, "failed at register"),
    "file-diff-400-echoing-bearer-token": Case("ONPREM", {}, _file_diff_400_echo, "HTTP 400"),
    "zitadel-401-echoing-client-secret": Case("ONPREM", {}, _zitadel_401_echo, "HTTP 401", False),
    "onprem-oauth-normal-run": Case("ONPREM", {}, _nothing, oauth=True, oauth_tokens=1),
    "cloud-oauth-token-expiring-mid-run": Case("CLOUD", {}, _oauth_token_expires_mid_run, oauth=True, oauth_tokens=2),
    "onprem-oauth-wrong-secret-echoed": Case(
        "ONPREM",
        {"CONFLUENCE_CLIENT_SECRET": WRONG_CLIENT_SECRET},
        _oauth_token_401_echo,
        "CONFLUENCE_CLIENT_SECRET",
        False,
        oauth=True,
    ),
    "cloud-oauth-wrong-secret-echoed": Case(
        "CLOUD",
        {"CONFLUENCE_CLIENT_SECRET": WRONG_CLIENT_SECRET},
        _oauth_token_401_echo,
        "CONFLUENCE_CLIENT_SECRET",
        False,
        oauth=True,
    ),
    "cloud-oauth-401-echoing-bearer-token": Case(
        "CLOUD", {}, _confluence_401_echo, "HTTP 401", False, oauth=True, oauth_tokens=2
    ),
    "media-host-500-echoing-its-download-token": Case("CLOUD", {}, _media_host_echoing_its_token, "failed at download"),
}
ECHOING = (
    _confluence_401_echo,
    _graphql_echo_on_register,
    _file_diff_400_echo,
    _zitadel_401_echo,
    _oauth_token_401_echo,
    _media_host_echoing_its_token,
)


@pytest.mark.parametrize("name", list(CASES))
def test_no_secret_reaches_output_logs_errors_or_dagster_home(
    name: str,
    request: pytest.FixtureRequest,
    capfd: pytest.CaptureFixture[str],
    home: tuple[Path, dg.DagsterInstance],
    tmp_path: Path,
) -> None:
    case = CASES[name]
    dagster_home, instance = home
    log_file = tmp_path / "debug.log"
    box: Sandbox = request.getfixturevalue(case.mode.lower())
    if case.oauth:
        box.set_env(**oauth_env(box.confluence))
    box.set_env(
        DEBUG_MODE="true",
        DEBUG_LOG_FILE=str(log_file),
        UNIQUE_SERVICE_EXTRA_HEADERS=json.dumps({"x-api-key": HEADER_SECRET}),
        **case.env,
    )
    box.confluence.wiki.add_space("ENG", "Engineering")
    for n in range(3):
        box.confluence.wiki.add_page("ENG", f"Page {n}", labels=["ai-ingest"])
    ECHOED.clear()
    MEDIA_TOKENS.clear()
    case.arm(box)

    result = confluence_sync.execute_in_process(
        resources=resources_from_env(box.env), instance=instance, raise_on_error=False
    )
    tokens = list(box.unique._tokens)  # every bearer token the emulator issued in this run
    oauth_tokens = list(box.confluence.oauth._expiry)  # and every Confluence OAuth token

    assert result.success is not case.failure, failure_text(result)
    errors = _error_texts(result)
    assert case.failure in errors, errors
    assert bool(tokens) is case.gets_token  # issued bearer tokens are secrets too
    assert len(oauth_tokens) == case.oauth_tokens == box.confluence.oauth_tokens_issued
    assert bool(ECHOED) is (case.arm in ECHOING) and all(ECHOED)  # the servers did send credentials back
    if case.arm is _oauth_token_401_echo:
        assert all(OAUTH_CLIENT_ID in echoed for echoed in ECHOED)  # the token request's body came back
    secrets = STATIC_SECRETS + tokens + oauth_tokens + MEDIA_TOKENS
    alert = _alert_text(box, result)
    captured = capfd.readouterr()
    output = captured.out + captured.err
    log_text = log_file.read_text(encoding="utf-8")
    stored = stored_bytes(dagster_home)
    # Each scan sees real content, so an empty scan cannot pass for a clean one.
    assert result.run_id in output and " DEBUG confluence_pipeline." in log_text and result.run_id.encode() in stored
    assert bool(alert) is bool(case.failure) and (not alert or result.run_id in alert)
    leaks = {
        "stdout/stderr": [s for s in secrets if s in output],
        "debug log": [s for s in secrets if s in log_text],
        "errors": [s for s in secrets if s in errors],
        "DAGSTER_HOME": [s for s in secrets if s.encode() in stored],
        "alert": [s for s in secrets if s in alert],
    }
    assert leaks == {"stdout/stderr": [], "debug log": [], "errors": [], "DAGSTER_HOME": [], "alert": []}


def _alert_text(box: Sandbox, result: dg.ExecuteInProcessResult) -> str:
    """What `confluence_sync_failure_sensor` would log and POST for a failed run; empty for a successful one."""
    if result.success:
        return ""
    report = build_failure_report(
        result.dagster_run,
        result.get_run_failure_event().message or "",
        [event for event in result.all_events if event.is_step_failure],
        scrubber=scrubber_for_variables(box.env),
    )
    return report.summary() + json.dumps(report.payload())


def _error_texts(result: dg.ExecuteInProcessResult) -> str:
    """Every error Dagster recorded for the run: messages, causes and stack traces."""
    parts = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            parts.append(event.step_failure_data.error.to_string())
            user = event.step_failure_data.user_failure_data
            if user is not None:
                parts.append(str(user.description))
                parts.extend(str(v.value) for v in user.metadata.values())
        if event.event_type_value == "RUN_FAILURE" and event.event_specific_data is not None:
            error = getattr(event.event_specific_data, "error", None)
            if error is not None:
                parts.append(error.to_string())
    return "\n".join(parts)


# -- TLS ---------------------------------------------------------------------------------------------------
@pytest.fixture
def tls_unique(
    onprem: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[Sandbox, trustme.CA, Path]]:
    """The sandbox, about to get Unique over HTTPS with a certificate from a fresh private CA (see below)."""
    for name in (
        "NODE_EXTRA_CA_CERTS",
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    ca = trustme.CA()
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    onprem.unique.stop()
    yield onprem, ca, ca_pem


def _https_unique(box: Sandbox, ca: trustme.CA, tmp_path: Path, hostname: str) -> UniqueEmulator:
    pem = tmp_path / f"{hostname}.pem"
    ca.issue_cert(hostname).private_key_and_cert_chain_pem.write_to_path(str(pem))
    unique = UniqueEmulator(client_secret=ZITADEL_SECRET)
    unique.wrap_tls(str(pem), str(pem))
    unique.start()
    box.unique = unique
    scope = unique.store.add_scope("KB").id
    box.set_env(**base_env(box.confluence, unique, scope))
    box.confluence.wiki.add_space("ENG", "Engineering")
    box.confluence.wiki.add_page("ENG", "Runbook", labels=["ai-ingest"])
    assert box.env["ZITADEL_OAUTH_TOKEN_URL"].startswith("https://")
    return unique


def test_tls_is_verified_by_default_and_cannot_be_switched_off_from_the_environment(
    tls_unique: tuple[Sandbox, trustme.CA, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box, ca, _ = tls_unique
    unique = _https_unique(box, ca, tmp_path, "127.0.0.1")
    for name, value in {"PYTHONHTTPSVERIFY": "0", "CURL_CA_BUNDLE": "", "REQUESTS_CA_BUNDLE": ""}.items():
        monkeypatch.setenv(name, value)  # switches other HTTP stacks honour; ours must not
    try:
        result = box.run_sync(expect_success=False)
    finally:
        unique.stop()

    text = failure_text(result)
    assert "TLS certificate verification failed" in text and "NODE_EXTRA_CA_CERTS" in text, text
    assert unique.requests == []  # no request got past the handshake
    assert unique_state(box) == {}


def test_a_certificate_for_another_host_is_refused_even_from_a_trusted_ca(
    tls_unique: tuple[Sandbox, trustme.CA, Path], tmp_path: Path
) -> None:
    box, ca, ca_pem = tls_unique
    unique = _https_unique(box, ca, tmp_path, "unique.example")
    box.set_env(NODE_EXTRA_CA_CERTS=str(ca_pem))
    try:
        result = box.run_sync(expect_success=False)
    finally:
        unique.stop()

    text = failure_text(result)
    assert "TLS certificate verification failed" in text and "127.0.0.1" in text, text
    assert unique.requests == [] and unique_state(box) == {}


def test_a_trusted_certificate_for_the_right_host_syncs(
    tls_unique: tuple[Sandbox, trustme.CA, Path], tmp_path: Path
) -> None:
    box, ca, ca_pem = tls_unique
    unique = _https_unique(box, ca, tmp_path, "127.0.0.1")
    box.set_env(NODE_EXTRA_CA_CERTS=str(ca_pem))
    try:
        box.run_sync()
    finally:
        unique.stop()

    assert [item.finalized for item in unique_state(box).values()] == [True]
