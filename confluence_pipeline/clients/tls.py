"""The TLS trust store for every outbound call, built from the same variables the old Node image honoured.

- `SSL_CERT_FILE` (first) or `REQUESTS_CA_BUNDLE` set: trust exactly that bundle; the defaults are replaced.
- `NODE_EXTRA_CA_CERTS` set: the default store (certifi's bundle, which httpx would use, plus the system's
  store) and in addition the certificates in that file.
- None of them: the default store.

Verification is always on. A bundle that is missing, unreadable or not PEM fails fast with a `ValueError`
naming the variable and the path, rather than as a certificate error on the first request.
"""

from __future__ import annotations

import functools
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

    Loading the stores costs 50–80 ms and every op opens clients: contexts are shared per process for the
    same variables and the same bundle files (a rewritten bundle file gives a new context).
    """
    env = os.environ if env is None else env
    key = (
        *((name, _file_stamp(env.get(name, "").strip())) for name in (*REPLACING_VARIABLES, EXTRA_VARIABLE)),
        # OpenSSL's "system store" follows these in the process environment, whatever `env` says.
        *((name, _file_stamp(os.environ.get(name, "").strip())) for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")),
    )
    return _cached_context(key, tuple((name, env.get(name, "")) for name in (*REPLACING_VARIABLES, EXTRA_VARIABLE)))


def _file_stamp(path: str) -> tuple[str, float | None]:
    try:
        return path, os.stat(path).st_mtime if path else None
    except OSError:
        return path, None


@functools.lru_cache(maxsize=8)
def _cached_context(_key: object, env_items: tuple[tuple[str, str], ...]) -> ssl.SSLContext:
    return _build(dict(env_items))


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
        raise ValueError(f"{variable} points to {path!r}, which does not exist")
    try:
        if os.path.isfile(path):
            with open(path, "rb"):  # "permission denied" says more than OpenSSL's generic load error
                pass
        return load(path)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"{variable} points to {path!r}, which cannot be read as a PEM CA bundle: {exc}") from exc
