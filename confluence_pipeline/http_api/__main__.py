"""Start the HTTP API (`python -m confluence_pipeline.http_api`) with its settings from the environment."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

import uvicorn

from confluence_pipeline.http_api.app import LOGGER_NAME, create_app
from confluence_pipeline.http_api.settings import (
    ALLOW_UNAUTHENTICATED_VARIABLE,
    TOKEN_VARIABLE,
    HttpApiSettings,
    HttpApiSettingsError,
)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _ScrubbingFilter(logging.Filter):
    """Last line of defence: the token never leaves through a log line, e.g. when a caller puts it in a URL."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._secret in message:
            record.msg, record.args = message.replace(self._secret, "***"), None
        return True


def configure_logging(settings: HttpApiSettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    if settings.token is not None:
        handler.addFilter(_ScrubbingFilter(settings.token.get_secret_value()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # httpx and gql log every GraphQL request (and gql its payload at debug); the access log says enough.
    for noisy in ("httpx", "httpcore", "gql"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(environ: Mapping[str, str] | None = None) -> int:
    try:
        settings = HttpApiSettings.from_env(os.environ if environ is None else environ)
    except HttpApiSettingsError as exc:
        print(f"confluence_pipeline.http_api refuses to start. {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    log = logging.getLogger(LOGGER_NAME)
    if settings.token is None:
        log.warning(
            "%s is not set and %s=true: every endpoint answers WITHOUT authentication. "
            "Only expose port %s where every caller is trusted.",
            TOKEN_VARIABLE,
            ALLOW_UNAUTHENTICATED_VARIABLE,
            settings.port,
        )
    log.info(
        "HTTP API on %s:%s; runs are launched through the Dagster webserver at %s (code location %s)",
        settings.host,
        settings.port,
        settings.dagster_webserver_url,
        settings.code_location,
    )
    # log_config=None keeps uvicorn's records on our handler (and its scrubbing filter); our own access log
    # replaces uvicorn's so that each line names the caller once.
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
