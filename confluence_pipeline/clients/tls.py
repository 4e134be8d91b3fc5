"""The TLS trust store for every outbound call, built from the same variables the old Node image honoured.

- `SSL_CERT_FILE` (first) or `REQUESTS_CA_BUNDLE` set: trust exactly that bundle; the defaults are replaced.
- `NODE_EXTRA_CA_CERTS` set: the default store (certifi's bundle, which httpx would use, plus the system's
  store) and in addition the certificates in that file.
- None of them: the default store.

Verification is always on. A bundle that is missing, unreadable or not PEM fails fast with a `ValueError`
naming the variable and the path, rather than as a certificate error on the first request.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from typing import TypeVar

import certifi

REPLACING_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
EXTRA_VARIABLE = "NODE_EXTRA_CA_CERTS"

T = TypeVar("T")


def build_ssl_context(env: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """An `ssl.SSLContext` to pass as httpx's `verify=` (which httpx then uses as is, whatever `trust_env`).

    Loading the stores costs 50–80 ms: each client resource builds one per run, shared by all its requests.
    """
    env = os.environ if env is None else env
    return _build({name: env.get(name, "") for name in (*REPLACING_VARIABLES, EXTRA_VARIABLE)})


class TrustStoreError(ValueError):
    """A CA bundle variable points to something unusable; `variable` names it, `reason` says why."""

    def __init__(self, variable: str, reason: str) -> None:
        self.variable = variable
        self.reason = reason
        super().__init__(f"{variable} {reason}")


def _build(env: Mapping[str, str]) -> ssl.SSLContext:
    for variable in REPLACING_VARIABLES:
        path = env.get(variable, "").strip()
        if path:
            return _checked(variable, path, _bundle_context)
    context = ssl.create_default_context(cafile=certifi.where())
    context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    extra = env.get(EXTRA_VARIABLE, "").strip()
    if extra:
        _checked(EXTRA_VARIABLE, extra, lambda bundle: context.load_verify_locations(cafile=bundle))
    return context


def _bundle_context(path: str) -> ssl.SSLContext:
    if os.path.isdir(path):
        return ssl.create_default_context(capath=path)
    return ssl.create_default_context(cafile=path)


def _checked(variable: str, path: str, load: Callable[[str], T]) -> T:
    if not os.path.exists(path):
        raise TrustStoreError(variable, f"points to {path!r}, which does not exist")
    try:
        if os.path.isfile(path):
            with open(path, "rb"):  # "permission denied" says more than OpenSSL's generic load error
                pass
        return load(path)
    except (OSError, ssl.SSLError) as exc:
        raise TrustStoreError(variable, f"points to {path!r}, which cannot be read as a PEM CA bundle: {exc}") from exc
