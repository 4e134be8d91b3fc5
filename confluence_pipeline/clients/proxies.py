"""Per-request proxy decisions from HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY, and the transport applying them."""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httpx

PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")
NO_PROXY_VARIABLE = "NO_PROXY"
DEFAULT_PORTS = {"http": 80, "https": 443}
SUPPORTED_PROXY_SCHEMES = ("http", "https")
# httpx's own default, for callers (the alert webhook) that do not size their pool.
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

_SEPARATORS = re.compile(r"[,\s]+")
_HOST_NAME = re.compile(r"^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$")
_DOTTED_NUMBERS = re.compile(r"^[0-9.]+$")  # "192.168" is neither an address nor a name: no TLD is numeric
_PORT = re.compile(r"^[0-9]{1,5}$")
_ENTRY_FORMS = (
    "entries are host names, .domain or *.domain, IP addresses or CIDR ranges; names and addresses may add :port"
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyConfigurationError(ValueError):
    """A proxy variable cannot be understood; the message names the variable and never holds a password."""


@dataclass(frozen=True)
class NoProxyEntry:
    """One NO_PROXY entry: a domain or an IP range, for every port or for one."""

    text: str
    domain: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    def matches(self, host: str, ip: IPAddress | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            # No DNS lookup for names: it would cost a lookup per request and could disagree with what the
            # proxy resolves. curl and Go do not resolve either.
            return ip is not None and ip in self.network
        # `domain`, `.domain` and `*.domain` all match the bare domain too. curl and Python's urllib read
        # `.domain` that way (neither understands `*.`); Go and Node's proxy-from-env match only subdomains
        # for `.domain` and `*.domain`. We take the wider match: an operator writing `*.mydomain` declares
        # the domain internal, and sending its apex through the proxy is the failure this module prevents.
        return ip is None and (host == self.domain or host.endswith(f".{self.domain}"))


@dataclass(frozen=True, repr=False)
class ProxyRules:
    """The proxy environment, read once: where each request goes (`proxy_for`) and how (`transport`).

    - Upper- or lower-case variables: the lower-case name wins when both are set, and an empty value counts
      as unset (curl's rule; a templated `https_proxy: ""` does not cancel an `HTTPS_PROXY` set elsewhere).
    - `https://` targets use HTTPS_PROXY, `http://` targets HTTP_PROXY; ALL_PROXY stands in for either when
      it is unset. A proxy URL without a scheme is `http://`; only `http://` and `https://` proxies are supported.
    - NO_PROXY entries, separated by commas or whitespace, case-insensitive: `*` (everything goes direct);
      `domain`, `.domain` and `*.domain` (the domain itself and every subdomain); any name or IP address
      with `:port` (that port only; a URL without a port has 80 or 443); IPv4 and IPv6 addresses (`::1` or
      `[::1]`); CIDR ranges (`10.0.0.0/8`). Addresses and ranges match IP-literal hosts only, names are never
      resolved, and `localhost` goes direct only when listed.
    - A malformed entry or proxy URL raises `ProxyConfigurationError` naming the variable, never a password.
    """

    https_proxy: str | None = None
    http_proxy: str | None = None
    all_proxy: str | None = None
    no_proxy: tuple[NoProxyEntry, ...] = ()
    bypass_all: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ProxyRules:
        """Read the proxy variables from `environ` (default `os.environ`); raises ProxyConfigurationError."""
        env = os.environ if environ is None else environ
        proxies: dict[str, str | None] = {}
        for name in PROXY_VARIABLES:
            variable, value = _lookup(env, name)
            proxies[name] = _proxy_url(variable, value) if value else None
        variable, value = _lookup(env, NO_PROXY_VARIABLE)
        texts = [text for text in _SEPARATORS.split(value) if text]
        return cls(
            https_proxy=proxies["HTTPS_PROXY"],
            http_proxy=proxies["HTTP_PROXY"],
            all_proxy=proxies["ALL_PROXY"],
            # Every entry is checked, even next to `*`: a typo should surface before `*` is taken out again.
            no_proxy=tuple(_no_proxy_entry(variable, text) for text in texts if text != "*"),
            bypass_all="*" in texts,
        )

    def __repr__(self) -> str:
        proxies = {scheme: _redacted(url) for scheme, url in self._by_scheme() if url}
        no_proxy = "*" if self.bypass_all else ",".join(entry.text for entry in self.no_proxy)
        return f"ProxyRules(proxies={proxies!r}, no_proxy={no_proxy!r})"

    @property
    def proxy_urls(self) -> tuple[str, ...]:
        """Every distinct proxy a request may go through."""
        return tuple(dict.fromkeys(url for _, url in self._by_scheme() if url))

    @property
    def secrets(self) -> tuple[str, ...]:
        """Proxy passwords as written and decoded, and the Basic credential sent in Proxy-Authorization."""
        found: list[str] = []
        for url in self.proxy_urls:
            parts = urlsplit(url)
            if parts.password:
                user, password = unquote(parts.username or ""), unquote(parts.password)
                credential = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
                found.extend((parts.password, password, credential))
        return tuple(dict.fromkeys(found))

    def proxy_for(self, url: httpx.URL | str) -> str | None:
        """The proxy URL (credentials included) for a request to `url`, or None when it goes direct."""
        url = url if isinstance(url, httpx.URL) else httpx.URL(url)
        if url.scheme == "https":
            proxy = self.https_proxy or self.all_proxy
        elif url.scheme == "http":
            proxy = self.http_proxy or self.all_proxy
        else:
            return None  # httpx refuses other schemes itself
        if proxy is None or self.bypass_all:
            return None
        host = url.raw_host.decode("ascii").rstrip(".")  # IDNA-encoded, as the entries are
        port = url.port or DEFAULT_PORTS[url.scheme]
        ip = _ip_address(host)
        if any(entry.matches(host, ip, port) for entry in self.no_proxy):
            return None
        return proxy

    def transport(
        self, *, verify: ssl.SSLContext | bool = True, limits: httpx.Limits = DEFAULT_LIMITS
    ) -> httpx.BaseTransport:
        """A transport that routes every request by these rules; build the client with `trust_env=False`."""
        if self.bypass_all or not self.proxy_urls:
            return httpx.HTTPTransport(verify=verify, limits=limits)
        return ProxyRoutingTransport(self, verify=verify, limits=limits)

    def _by_scheme(self) -> tuple[tuple[str, str | None], ...]:
        return (("https", self.https_proxy), ("http", self.http_proxy), ("all", self.all_proxy))


class ProxyRoutingTransport(httpx.BaseTransport):
    """Sends each request direct or through the proxy its rules name, over one connection pool per route."""

    def __init__(self, rules: ProxyRules, *, verify: ssl.SSLContext | bool, limits: httpx.Limits) -> None:
        self._rules = rules
        self._direct = httpx.HTTPTransport(verify=verify, limits=limits)
        self._via = {
            url: httpx.HTTPTransport(verify=verify, limits=limits, proxy=_proxy(url, verify))
            for url in rules.proxy_urls
        }

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        proxy = self._rules.proxy_for(request.url)
        transport = self._direct if proxy is None else self._via[proxy]
        return transport.handle_request(request)

    def close(self) -> None:
        for transport in (self._direct, *self._via.values()):
            transport.close()


def _proxy(url: str, verify: ssl.SSLContext | bool) -> httpx.Proxy:
    if urlsplit(url).scheme.lower() != "https" or not isinstance(verify, ssl.SSLContext):
        return httpx.Proxy(url)  # httpcore refuses a proxy TLS context for a plain-HTTP proxy
    # An https:// proxy is trusted through the same store as the servers behind it: a corporate proxy's
    # certificate usually comes from the private CA that NODE_EXTRA_CA_CERTS already adds.
    return httpx.Proxy(url, ssl_context=verify)


def _lookup(env: Mapping[str, str], name: str) -> tuple[str, str]:
    """The variable that applies (lower case first) and its value; an empty value counts as unset."""
    for variable in (name.lower(), name):
        value = (env.get(variable) or "").strip()
        if value:
            return variable, value
    return name, ""


def _proxy_url(variable: str, value: str) -> str:
    url = value if "://" in value else f"http://{value}"
    # The value may hold a password: messages show it redacted, or not at all.
    invalid = ProxyConfigurationError(f"{variable} is not a proxy URL such as http://proxy.example:3128")
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # `port` raises ValueError when it is not a number in range
    except ValueError:
        raise invalid from None
    if parts.scheme.lower() not in SUPPORTED_PROXY_SCHEMES:
        raise ProxyConfigurationError(
            f"{variable} is a {parts.scheme}:// URL ({_redacted(url)}); only http:// and https:// proxies are supported"
        )
    if not host or (_ip_address(host) is None and not _HOST_NAME.match(_normalised_name(host) or "")):
        raise invalid
    try:
        httpx.Proxy(url)
    except (ValueError, httpx.InvalidURL):
        raise invalid from None
    return url


def _no_proxy_entry(variable: str, text: str) -> NoProxyEntry:
    # A malformed entry is an error, not skipped: skipping it would send traffic the operator meant to keep
    # internal (with its credentials, for plain-HTTP targets) to the proxy without a word.
    try:
        return _parse_entry(text.lower())
    except ValueError as reason:
        raise ProxyConfigurationError(f"{variable}: {text!r} {reason}; {_ENTRY_FORMS}") from None


def _parse_entry(text: str) -> NoProxyEntry:
    if "://" in text:
        raise ValueError("is a URL, not a host")
    if "/" in text:
        address, _, bits = text.partition("/")
        if address.startswith("[") and address.endswith("]"):
            address = address[1:-1]
        try:
            return NoProxyEntry(text, network=ipaddress.ip_network(f"{address}/{bits}", strict=False))
        except ValueError:
            raise ValueError("is not a CIDR range") from None
    host, port = _split_port(text)
    ip = _ip_address(host)
    if ip is not None:
        return NoProxyEntry(text, network=ipaddress.ip_network(ip), port=port)
    domain = host[2:] if host.startswith("*.") else host.removeprefix(".")
    domain = _normalised_name(domain.removesuffix("."))
    if domain is None or not _HOST_NAME.match(domain) or _DOTTED_NUMBERS.match(domain):
        raise ValueError("is not a host name, domain or IP address")
    return NoProxyEntry(text, domain=domain, port=port)


def _split_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not isinstance(_ip_address(host), ipaddress.IPv6Address) or rest[:1] not in ("", ":"):
            raise ValueError("is not a bracketed IPv6 address")
        return host, _port(rest[1:]) if rest else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, _port(port)
    return text, None  # a name, an IPv4 address or a bare IPv6 address, whose colons are no port


def _port(text: str) -> int:
    if not _PORT.match(text) or not 0 < int(text) < 65536:
        raise ValueError("has no valid port after the colon")
    return int(text)


def _ip_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _normalised_name(name: str) -> str | None:
    """`name` as httpx encodes a request's host (lower case, IDNA), so both sides compare alike."""
    if name.isascii():
        return name
    try:
        return httpx.URL(f"http://{name}/").raw_host.decode("ascii")
    except httpx.InvalidURL:
        return None


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()
