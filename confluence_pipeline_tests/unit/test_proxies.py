"""ProxyRules: which proxy each URL goes through, for every NO_PROXY form, scheme and variable spelling."""

from __future__ import annotations

import base64
import ssl

import httpx
import pytest

from confluence_pipeline.clients.proxies import (
    ProxyConfigurationError,
    ProxyRoutingTransport,
    ProxyRules,
)
from confluence_pipeline.clients.transport import HttpApi

CORP = "http://proxy.corp:3128"
OTHER = "http://other.corp:8080"
VIA = "via"  # the case's expectation: through CORP
DIRECT = None


def route(env: dict[str, str], url: str) -> str | None:
    return ProxyRules.from_environ(env).proxy_for(url)


# (NO_PROXY, URL, expected route); every case has ALL_PROXY=CORP, so "via" means CORP for http and https.
NO_PROXY_CASES = [
    # nothing excluded
    ("", "https://confluence.mydomain/rest", VIA),
    # `*`: alone or among other entries, everything goes direct
    ("*", "https://anything.example/", DIRECT),
    ("*", "http://10.1.2.3/", DIRECT),
    ("localhost, *", "https://anything.example/", DIRECT),
    # `domain`: the domain itself and every subdomain, never a mere suffix
    ("mydomain", "https://mydomain/", DIRECT),
    ("mydomain", "https://confluence.mydomain/", DIRECT),
    ("mydomain", "https://a.b.mydomain/", DIRECT),
    ("mydomain", "https://notmydomain/", VIA),
    ("mydomain", "https://mydomain.evil.example/", VIA),
    # `.domain`: the same
    (".mydomain", "https://mydomain/", DIRECT),
    (".mydomain", "https://confluence.mydomain/", DIRECT),
    (".mydomain", "https://notmydomain/", VIA),
    # `*.domain`: the same, the bare domain included (the form the original product documents)
    ("*.mydomain", "https://mydomain/", DIRECT),
    ("*.mydomain", "https://confluence.mydomain/", DIRECT),
    ("*.mydomain", "http://confluence.mydomain:8090/rest", DIRECT),
    ("*.mydomain", "https://x.y.mydomain/", DIRECT),
    ("*.mydomain", "https://notmydomain/", VIA),
    ("*.mydomain", "https://mydomain.example/", VIA),
    ("localhost,*.mydomain", "https://unique.example/", VIA),
    ("localhost,*.mydomain", "http://localhost:8080/", DIRECT),
    # case and a trailing dot on either side
    ("*.MyDomain", "https://CONFLUENCE.mydomain/", DIRECT),
    ("CONFLUENCE.MYDOMAIN", "https://confluence.mydomain/", DIRECT),
    ("mydomain.", "https://confluence.mydomain./", DIRECT),
    ("*.mydomain", "https://confluence.mydomain./", DIRECT),
    # separators: commas, whitespace, both, surrounding spaces, empty entries
    (" localhost ,\t*.mydomain\n unique.example ", "https://unique.example/", DIRECT),
    ("localhost *.mydomain", "https://confluence.mydomain/", DIRECT),
    (",,localhost,,*.mydomain,", "https://confluence.mydomain/", DIRECT),
    (" , ", "https://confluence.mydomain/", VIA),
    # host:port: that port only; a URL without a port has 80 (http) or 443 (https)
    ("confluence.mydomain:8443", "https://confluence.mydomain:8443/", DIRECT),
    ("confluence.mydomain:8443", "https://confluence.mydomain/", VIA),
    ("confluence.mydomain:8443", "https://confluence.mydomain:8444/", VIA),
    ("confluence.mydomain:443", "https://confluence.mydomain/", DIRECT),
    ("confluence.mydomain:443", "http://confluence.mydomain/", VIA),
    ("confluence.mydomain:80", "http://confluence.mydomain/", DIRECT),
    ("*.mydomain:8443", "https://wiki.mydomain:8443/", DIRECT),
    ("*.mydomain:8443", "https://wiki.mydomain/", VIA),
    # IPv4 addresses, with and without a port; names are never resolved
    ("10.1.2.3", "http://10.1.2.3:8080/", DIRECT),
    ("10.1.2.3", "http://10.1.2.4/", VIA),
    ("10.1.2.3:8080", "http://10.1.2.3:8080/", DIRECT),
    ("10.1.2.3:8080", "http://10.1.2.3/", VIA),
    ("127.0.0.1", "http://localhost/", VIA),
    ("localhost", "http://127.0.0.1/", VIA),  # no implicit exemption, no resolution
    ("", "http://127.0.0.1/", VIA),
    # IPv6 addresses, bare or bracketed, with a port only when bracketed; compared as addresses
    ("::1", "http://[::1]:8080/", DIRECT),
    ("[::1]", "http://[::1]:8080/", DIRECT),
    ("[::1]:8080", "http://[::1]:8080/", DIRECT),
    ("[::1]:8080", "http://[::1]:8081/", VIA),
    ("[2001:db8::1]", "https://[2001:DB8:0:0:0:0:0:1]/", DIRECT),
    ("2001:db8::1", "https://[2001:db8::2]/", VIA),
    ("::1", "http://127.0.0.1/", VIA),
    # CIDR ranges: IP-literal hosts inside them only
    ("10.0.0.0/8", "http://10.20.30.40/", DIRECT),
    ("10.0.0.0/8", "https://10.255.255.255:8443/", DIRECT),
    ("10.0.0.0/8", "http://11.0.0.1/", VIA),
    ("10.0.0.0/8", "http://internal.mydomain/", VIA),  # a name, even one resolving into the range
    ("10.1.2.3/8", "http://10.9.9.9/", DIRECT),  # host bits are ignored, as Go does
    ("192.168.0.0/16,172.16.0.0/12", "http://172.31.0.1/", DIRECT),
    ("fd00::/8", "http://[fd12:3456::1]/", DIRECT),
    ("[fd00::]/8", "http://[fd12:3456::1]/", DIRECT),
    ("fd00::/8", "http://[fe80::1]/", VIA),
    ("fd00::/8", "http://10.0.0.1/", VIA),
    ("10.0.0.0/8", "http://[::ffff:a00:1]/", VIA),  # another address family
    # internationalised names compare in their IDNA form
    ("bücher.example", "https://www.bücher.example/", DIRECT),
    ("xn--bcher-kva.example", "https://bücher.example/", DIRECT),
]


@pytest.mark.parametrize(("no_proxy", "url", "expected"), NO_PROXY_CASES)
def test_no_proxy_entries(no_proxy: str, url: str, expected: str | None) -> None:
    assert route({"ALL_PROXY": CORP, "NO_PROXY": no_proxy}, url) == (CORP if expected == VIA else None)


# (environment, URL, expected proxy): which variable applies to which scheme, and which spelling wins.
SCHEME_CASES = [
    ({}, "https://unique.example/", None),
    ({"HTTPS_PROXY": CORP}, "https://unique.example/", CORP),
    ({"HTTPS_PROXY": CORP}, "http://unique.example/", None),
    ({"HTTP_PROXY": CORP}, "http://unique.example/", CORP),
    ({"HTTP_PROXY": CORP}, "https://unique.example/", None),  # no fallback from HTTPS to HTTP_PROXY
    ({"ALL_PROXY": CORP}, "https://unique.example/", CORP),
    ({"ALL_PROXY": CORP}, "http://unique.example/", CORP),
    ({"HTTPS_PROXY": CORP, "ALL_PROXY": OTHER}, "https://unique.example/", CORP),
    ({"HTTPS_PROXY": CORP, "ALL_PROXY": OTHER}, "http://unique.example/", OTHER),
    ({"HTTPS_PROXY": CORP, "HTTP_PROXY": OTHER}, "http://unique.example/", OTHER),
    # lower case: alone, and winning over upper case
    ({"https_proxy": CORP}, "https://unique.example/", CORP),
    ({"http_proxy": CORP}, "http://unique.example/", CORP),
    ({"all_proxy": CORP}, "https://unique.example/", CORP),
    ({"https_proxy": CORP, "HTTPS_PROXY": OTHER}, "https://unique.example/", CORP),
    ({"http_proxy": CORP, "HTTP_PROXY": OTHER}, "http://unique.example/", CORP),
    ({"all_proxy": CORP, "ALL_PROXY": OTHER}, "http://unique.example/", CORP),
    # an empty (or blank) value counts as unset, so the other spelling applies
    ({"https_proxy": "", "HTTPS_PROXY": OTHER}, "https://unique.example/", OTHER),
    ({"https_proxy": "  ", "HTTPS_PROXY": OTHER}, "https://unique.example/", OTHER),
    ({"HTTPS_PROXY": ""}, "https://unique.example/", None),
    # NO_PROXY spelling: lower case wins, and an empty one gives way
    ({"ALL_PROXY": CORP, "no_proxy": "other.example", "NO_PROXY": "unique.example"}, "https://unique.example/", CORP),
    ({"ALL_PROXY": CORP, "no_proxy": "unique.example", "NO_PROXY": "other.example"}, "https://unique.example/", None),
    ({"ALL_PROXY": CORP, "no_proxy": "", "NO_PROXY": "unique.example"}, "https://unique.example/", None),
    # proxy URLs: no scheme means http://, surrounding spaces are dropped, https:// proxies are kept as given
    ({"HTTPS_PROXY": "proxy.corp:3128"}, "https://unique.example/", CORP),
    ({"HTTPS_PROXY": f"  {CORP} "}, "https://unique.example/", CORP),
    ({"HTTPS_PROXY": "https://proxy.corp:3129"}, "https://unique.example/", "https://proxy.corp:3129"),
    # a scheme httpx cannot send at all is never proxied (httpx refuses it itself)
    ({"ALL_PROXY": CORP}, "ftp://unique.example/", None),
]


@pytest.mark.parametrize(("env", "url", "expected"), SCHEME_CASES)
def test_scheme_selection_and_precedence(env: dict[str, str], url: str, expected: str | None) -> None:
    assert route(env, url) == expected


# Malformed NO_PROXY entries are errors: skipping one silently would send traffic the operator meant to keep
# internal to the proxy.
@pytest.mark.parametrize(
    "entry",
    [
        "http://confluence.mydomain",  # a URL
        "confluence.mydomain:https",  # a port that is not a number
        "confluence.mydomain:0",
        "confluence.mydomain:65536",
        "confluence.mydomain:",
        "*mydomain",  # a wildcard that is not `*.`
        "mydomain.*",
        "conf*.mydomain",
        "*.",
        ".",
        "**",
        "10.0.0.0/33",  # not a CIDR range
        "10.0.0.0/",
        "mydomain/8",
        "[::1",  # broken brackets
        "[::1]8080",
        "[10.0.0.1]",  # brackets are for IPv6
        "192.168.",  # an IP prefix, which some tools accept
        "10.0.0.256",
        "<local>",  # the Windows bypass list
        "my_domain!",
    ],
)
def test_a_malformed_no_proxy_entry_is_an_error_naming_the_variable(entry: str) -> None:
    with pytest.raises(ProxyConfigurationError) as info:
        ProxyRules.from_environ({"HTTPS_PROXY": CORP, "no_proxy": f"localhost,{entry}"})
    assert str(info.value).startswith(f"no_proxy: {entry!r} ")


def test_a_malformed_entry_is_an_error_even_without_a_proxy_or_next_to_a_star() -> None:
    with pytest.raises(ProxyConfigurationError, match=r"^NO_PROXY: 'http://x' is a URL"):
        ProxyRules.from_environ({"NO_PROXY": "*,http://x"})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ftp://corp-user:Proxy-Pass-123@proxy.corp:21", r"is a ftp:// URL \(ftp://corp-user:\*\*\*@proxy.corp:21\)"),
        ("socks5://corp-user:Proxy-Pass-123@proxy.corp:1080", r"only http:// and https:// proxies are supported"),
        ("http://corp-user:Proxy-Pass-123@proxy.corp:99999", r"is not a proxy URL"),
        ("http://corp-user:Proxy-Pass-123@proxy.corp:port", r"is not a proxy URL"),
        ("http://corp-user:Proxy-Pass-123@:3128", r"is not a proxy URL"),
        ("http://", r"is not a proxy URL"),
        ("http://proxy corp:3128", r"is not a proxy URL"),
    ],
)
def test_a_malformed_proxy_url_is_an_error_naming_the_variable_without_its_password(value: str, message: str) -> None:
    with pytest.raises(ProxyConfigurationError, match=message) as info:
        ProxyRules.from_environ({"https_proxy": value})
    assert str(info.value).startswith("https_proxy ")
    assert "Proxy-Pass-123" not in str(info.value)


def test_proxy_credentials_are_offered_for_scrubbing_and_hidden_from_repr() -> None:
    rules = ProxyRules.from_environ(
        {
            "HTTPS_PROXY": "http://corp-user:Pass%40word-1@proxy.corp:3128",
            "HTTP_PROXY": "http://corp-user:Pass%40word-1@proxy.corp:3128",  # the same proxy, counted once
            "ALL_PROXY": "http://other-user:second-secret@other.corp:8080",
            "NO_PROXY": "*.mydomain",
        }
    )
    basic = base64.b64encode(b"corp-user:Pass@word-1").decode()
    assert rules.secrets == (
        "Pass%40word-1",
        "Pass@word-1",
        basic,
        "second-secret",
        base64.b64encode(b"other-user:second-secret").decode(),
    )
    shown = repr(rules)
    assert "Pass" not in shown and "second-secret" not in shown and basic not in shown
    assert "http://corp-user:***@proxy.corp:3128" in shown and "*.mydomain" in shown


def test_the_environment_defaults_to_os_environ_and_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("https_proxy", "http_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", CORP)
    monkeypatch.setenv("NO_PROXY", "*.mydomain")
    rules = ProxyRules.from_environ()
    monkeypatch.setenv("NO_PROXY", "unique.example")  # later changes do not apply to rules already read

    assert rules.proxy_for("https://unique.example/") == CORP
    assert rules.proxy_for(httpx.URL("https://confluence.mydomain/")) is None


def test_the_transport_routes_only_when_some_proxy_applies() -> None:
    context = ssl.create_default_context()
    assert isinstance(ProxyRules.from_environ({}).transport(verify=context), httpx.HTTPTransport)
    assert isinstance(ProxyRules.from_environ({"ALL_PROXY": CORP, "NO_PROXY": "*"}).transport(), httpx.HTTPTransport)
    routing = ProxyRules.from_environ({"ALL_PROXY": CORP, "HTTPS_PROXY": "https://tls-proxy.corp:3129"}).transport(
        verify=context
    )
    assert isinstance(routing, ProxyRoutingTransport)
    routing.close()


def test_an_injected_transport_bypasses_the_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "")
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"host": request.url.host}))
    with HttpApi(system="unique", base_url="https://unique.example/api", transport=transport) as api:
        assert api.json("GET", "x", route="GET x") == {"host": "unique.example"}
