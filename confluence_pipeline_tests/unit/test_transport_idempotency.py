"""HttpApi retries a request that is not safe to repeat only when the server provably did not act on it."""

from __future__ import annotations

import pickle
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from confluence_pipeline.clients.errors import (
    OutcomeUnknown,
    RemoteAuthError,
    RemoteError,
    RemoteHttpError,
    RemoteNotFound,
    RemoteUnavailable,
)
from confluence_pipeline.clients.transport import HttpApi, RetryPolicy
from confluence_pipeline.clients.unique import UniqueGraphQLError
from confluence_pipeline.config.secrets import Scrubber
from confluence_sandbox.http import EmulatorServer, Fault, Request, Response

BASE = "https://unique.example.test/ingestion"
ROUTE = "graphql ContentDeleteByContentIds"
SECRET = "tok-Secret-4711"

Answer = httpx.Response | Exception


def _certificate_failure() -> httpx.ConnectError:
    error = httpx.ConnectError("certificate verify failed")
    error.__cause__ = ssl.SSLCertVerificationError("self-signed certificate in certificate chain")
    return error


class Scripted:
    """An HttpApi on a MockTransport that plays `answers` in order (the last one repeats)."""

    def __init__(self, answers: list[Answer], **kw: Any) -> None:
        self.answers = answers
        self.seen = 0
        self.waits: list[float] = []
        self.api = HttpApi(
            system="unique", base_url=BASE, transport=httpx.MockTransport(self._answer), sleep=self.waits.append, **kw
        )

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.seen += 1
        answer = self.answers[min(self.seen, len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def post(self, *, idempotent: bool) -> Any:
        return self.api.json("POST", "graphql", route=ROUTE, json={"query": "mutation"}, idempotent=idempotent)


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    made: list[Scripted] = []

    def make(answers: list[Answer], **kw: Any) -> Scripted:
        made.append(Scripted(answers, **kw))
        return made[-1]

    yield make
    for api in made:
        api.api.close()


def ok() -> httpx.Response:
    return httpx.Response(200, json={"data": {"ok": True}})


NOT_REACHED: list[Answer] = [
    httpx.ConnectError("Connection refused"),
    httpx.ConnectTimeout("timed out while connecting"),
    httpx.PoolTimeout("no connection free in the pool"),
    httpx.ProxyError("407 Proxy Authentication Required"),  # the proxy refused the tunnel
    httpx.Response(429, headers={"Retry-After": "0"}, json={"message": "slow down"}),
    httpx.Response(503, headers={"Retry-After": "0"}, json={"message": "maintenance"}),
]
AMBIGUOUS: list[Answer] = [
    httpx.ReadTimeout("timed out"),
    httpx.WriteTimeout("timed out"),
    httpx.ReadError("connection reset by peer"),
    httpx.WriteError("broken pipe"),
    httpx.RemoteProtocolError("Server disconnected without sending a response."),
    httpx.Response(500, json={"message": "Internal server error"}),
    httpx.Response(502, json={"message": "bad gateway"}),
    httpx.Response(504, json={"message": "gateway timeout"}),
]


def _name(answer: Answer) -> str:
    return f"HTTP {answer.status_code}" if isinstance(answer, httpx.Response) else type(answer).__name__


@pytest.mark.parametrize("failure", NOT_REACHED, ids=_name)
@pytest.mark.parametrize("idempotent", [True, False])
def test_failures_before_the_server_acted_are_retried_whatever_the_request(
    scripted: Callable[..., Scripted], failure: Answer, idempotent: bool
) -> None:
    h = scripted([failure, ok()])
    assert h.post(idempotent=idempotent) == {"data": {"ok": True}}
    assert h.seen == 2 and len(h.waits) == 1


@pytest.mark.parametrize("failure", AMBIGUOUS, ids=_name)
def test_idempotent_requests_still_retry_ambiguous_failures(scripted: Callable[..., Scripted], failure: Answer) -> None:
    h = scripted([failure, ok()])
    assert h.post(idempotent=True) == {"data": {"ok": True}}
    assert h.seen == 2 and len(h.waits) == 1


@pytest.mark.parametrize("failure", AMBIGUOUS, ids=_name)
def test_a_request_unsafe_to_repeat_is_sent_once_and_its_ambiguous_failure_is_outcome_unknown(
    scripted: Callable[..., Scripted], failure: Answer
) -> None:
    h = scripted([failure, ok()])
    with pytest.raises(OutcomeUnknown) as info:
        h.post(idempotent=False)
    assert h.seen == 1 and h.waits == []
    error = info.value
    assert (error.system, error.method, error.route) == ("unique", "POST", ROUTE)
    text = str(error)
    assert text.startswith(f"unique POST {ROUTE}: outcome unknown, the server may have applied it")
    if isinstance(failure, httpx.Response):
        assert error.status == failure.status_code and f"(HTTP {failure.status_code})" in text
        assert failure.json()["message"] in error.detail
    else:
        assert error.status is None and type(failure).__name__ in error.detail


def test_ambiguous_after_a_refused_connection_reports_every_attempt(scripted: Callable[..., Scripted]) -> None:
    h = scripted([httpx.ConnectError("refused"), httpx.ReadTimeout("timed out"), ok()])
    with pytest.raises(OutcomeUnknown) as info:
        h.post(idempotent=False)
    assert h.seen == 2 and len(h.waits) == 1
    assert info.value.attempts == 2 and "after 2 attempts" in str(info.value)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(httpx.ConnectError("refused"), RemoteUnavailable, id="never-connected"),
        pytest.param(httpx.Response(503, headers={"Retry-After": "0"}), RemoteHttpError, id="503-throughout"),
        pytest.param(httpx.Response(429, headers={"Retry-After": "0"}), RemoteHttpError, id="429-throughout"),
    ],
)
def test_exhausted_retries_the_server_never_acted_on_are_not_outcome_unknown(
    scripted: Callable[..., Scripted], answer: Answer, expected: type[RemoteError]
) -> None:
    h = scripted([answer], retry=RetryPolicy(attempts=3))
    with pytest.raises(expected) as info:
        h.post(idempotent=False)
    assert type(info.value) is expected
    assert h.seen == 3


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(httpx.Response(400, json={"message": "bad"}), RemoteHttpError, id="400"),
        pytest.param(httpx.Response(401, json={"message": "who?"}), RemoteAuthError, id="401"),
        pytest.param(httpx.Response(404, json={"message": "gone"}), RemoteNotFound, id="404"),
        pytest.param(httpx.Response(501, json={"message": "no such thing"}), RemoteHttpError, id="501"),
        pytest.param(_certificate_failure(), RemoteUnavailable, id="bad-certificate"),
        pytest.param(httpx.UnsupportedProtocol("unsupported protocol"), RemoteUnavailable, id="bad-url"),
    ],
)
def test_definite_failures_keep_their_error_and_are_not_retried(
    scripted: Callable[..., Scripted], answer: Answer, expected: type[RemoteError]
) -> None:
    h = scripted([answer, ok()])
    with pytest.raises(expected) as info:
        h.post(idempotent=False)
    assert type(info.value) is expected
    assert h.seen == 1 and h.waits == []


def test_outcome_unknown_is_scrubbed_like_every_error(scripted: Callable[..., Scripted]) -> None:
    echoed = httpx.Response(502, json={"message": f"upstream saw Bearer {SECRET} at https://blob.test/x?sig=SIG-PART"})
    errors: list[OutcomeUnknown] = []
    for answer in (echoed, httpx.ReadError(f"reset while sending {SECRET}")):
        h = scripted([answer], scrubber=Scrubber([SECRET]))
        with pytest.raises(OutcomeUnknown) as info:
            h.post(idempotent=False)
        errors.append(info.value)
    for error in errors:
        for text in (str(error), repr(error), error.detail):
            assert SECRET not in text and "SIG-PART" not in text
        assert error.__cause__ is None  # the httpx exception (with its request and URL) is not attached
    assert "upstream saw Bearer ***" in errors[0].detail


def test_outcome_unknown_survives_pickling() -> None:
    error = OutcomeUnknown(system="unique", method="POST", route=ROUTE, status=502, detail="bad gateway")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is OutcomeUnknown and str(copy) == str(error)


# -- real sockets: the server applies the request, then its answer is lost -------------------------------------


class CountingApp(EmulatorServer):
    name = "counting-app"

    def __init__(self) -> None:
        super().__init__()
        self.applied = 0
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]

    def handle(self, request: Request) -> Response:
        self.applied += 1
        return Response.json({"applied": self.applied})


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault(drop=True, after_handler=True), id="dropped"),
        pytest.param(Fault(delay=1.0, after_handler=True), id="timed-out"),
        pytest.param(Fault(502, {}, b"bad gateway", after_handler=True), id="502"),
    ],
)
@pytest.mark.parametrize("idempotent", [True, False])
def test_an_applied_request_whose_answer_is_lost_is_repeated_only_when_idempotent(
    fault: Fault, idempotent: bool
) -> None:
    with CountingApp() as server:
        server.faults.add(r"^/m$", fault)
        with HttpApi(system="unique", base_url=server.url, timeout=httpx.Timeout(0.3), sleep=lambda _: None) as api:
            if idempotent:
                assert api.json("POST", "/m", route="POST m", json={}, idempotent=True) == {"applied": 2}
            else:
                with pytest.raises(OutcomeUnknown):
                    api.json("POST", "/m", route="POST m", json={}, idempotent=False)
        assert server.applied == (2 if idempotent else 1)


def test_a_graphql_error_survives_pickling_across_step_processes() -> None:
    error = UniqueGraphQLError("ContentUpsert", "Bad Request", 400)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.status_code, copy.operation) == (
        UniqueGraphQLError,
        str(error),
        400,
        "ContentUpsert",
    )
