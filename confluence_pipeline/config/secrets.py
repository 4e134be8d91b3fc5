"""Secrets: the one type that hides a configured secret, and the one scrubber that keeps them out of text."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from pydantic import SecretStr

Secret = SecretStr
"""A configured secret: `str()`/`repr()` print `**********`; only `.get_secret_value()` reveals it."""

SCRUBBED = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mangle ordinary words without protecting anything
_SENSITIVE_HEADER = re.compile(r"authorization|cookie|token|secret|api[-_]?key|password|signature", re.IGNORECASE)
# Signed upload URLs and OAuth callbacks carry credentials in their query string: cut every query.
_URL_QUERY = re.compile(r"(https?://[^\s?#\"'<>]+)\?[^\s#\"'<>]*")


def reveal(secret: Secret | None) -> str | None:
    """The plain value of an optional secret, for the one place that sends it."""
    return None if secret is None else secret.get_secret_value()


def is_sensitive_header(name: str) -> bool:
    return bool(_SENSITIVE_HEADER.search(name))


class Scrubber:
    """Replaces every known secret (and its URL-encoded forms) with `***` and cuts URL query strings.

    Thread-safe; secrets learnt while running (issued bearer tokens, credentials of a header) are added
    with `add`, so an error that echoes them back is scrubbed too.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: list[str] = []
        self._learnt_headers: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def __repr__(self) -> str:
        return f"Scrubber({len(self._secrets)} forms)"

    def add(self, value: str | Secret | None) -> None:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not value or len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            known = set(self._secrets)
            for form in (value, quote(value, safe=""), quote_plus(value)):
                if form not in known:
                    self._secrets.append(form)
                    known.add(form)
            self._secrets.sort(key=len, reverse=True)  # a secret containing another must be replaced first

    def add_header(self, name: str, value: str) -> None:
        """Learn the value of a sensitive header, and the credential after its scheme ("Bearer x", "Basic y")."""
        if value in self._learnt_headers or not is_sensitive_header(name):
            return
        self.add(value)
        scheme, _, credential = value.partition(" ")
        if credential and scheme.isalpha():
            self.add(credential.strip())
        with self._lock:
            self._learnt_headers.add(value)

    def extend(self, other: Scrubber) -> None:
        with other._lock:
            secrets = list(other._secrets)
        for secret in secrets:
            self.add(secret)

    def scrub(self, text: str) -> str:
        with self._lock:
            secrets = list(self._secrets)
        for secret in secrets:
            text = text.replace(secret, SCRUBBED)
        return _URL_QUERY.sub(r"\1?…", text)

    def scrub_json_text(self, text: str) -> str:
        """Like `scrub`, also for the JSON-escaped form of each secret (quotes and backslashes escaped)."""
        with self._lock:
            secrets = list(self._secrets)
        for secret in secrets:
            escaped = secret.replace("\\", "\\\\").replace('"', '\\"')
            text = text.replace(escaped, SCRUBBED)
        return self.scrub(text)


class ScrubbingFilter(logging.Filter):
    """Last line of defence on our loggers: a log record never carries a configured secret."""

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self.scrubber.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


PACKAGE_LOGGER = "confluence_pipeline"


class LoggerScrubbing:
    """Attaches a `ScrubbingFilter` to every logger of the package for as long as a run uses it.

    A filter on a logger applies only to records created on that very logger, not to those propagating
    from its children, so it goes on each of our module loggers.
    """

    def __init__(self, scrubber: Scrubber) -> None:
        self._filter = ScrubbingFilter(scrubber)
        self._loggers: list[logging.Logger] = []

    def install(self) -> None:
        names = [
            name
            for name in logging.Logger.manager.loggerDict
            if name == PACKAGE_LOGGER or name.startswith(PACKAGE_LOGGER + ".")
        ]
        for name in [PACKAGE_LOGGER, *names]:
            logger = logging.getLogger(name)
            if logger not in self._loggers:
                logger.addFilter(self._filter)
                self._loggers.append(logger)

    def remove(self) -> None:
        for logger in self._loggers:
            logger.removeFilter(self._filter)
        self._loggers.clear()
