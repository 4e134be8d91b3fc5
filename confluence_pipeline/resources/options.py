"""`SyncOptionsResource`: run-wide switches (test mode, failure tolerance) and the run's log level and debug file."""

from __future__ import annotations

import logging

import dagster as dg
from pydantic import PrivateAttr

from confluence_pipeline.config.secrets import PACKAGE_LOGGER
from confluence_pipeline.config.settings import ConfigurationError, RunSettings, run_settings
from confluence_pipeline.resources.variables import VariablesResource, variable

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# httpx logs every URL (signed upload URLs included) at INFO: keep it quiet whatever the root level is.
_NOISY_LOGGERS = ("httpx", "httpcore")


class SyncOptionsResource(VariablesResource):
    """Run-wide switches. Our module logs reach the run through `python_logs.managed_python_loggers`."""

    test_mode: str | None = variable("true: discover and diff, write nothing")
    sync_failure_tolerance: str | None = variable("Page failures a run may have and still succeed (default 0)")
    debug_mode: str | None = variable("true: debug-level logs, also written to DEBUG_LOG_FILE")
    debug_log_file: str | None = variable("File for debug logs (default confluence_pipeline.log)")

    _settings: RunSettings | None = PrivateAttr(default=None)
    _file_handler: logging.Handler | None = PrivateAttr(default=None)
    _previous_level: int = PrivateAttr(default=logging.NOTSET)

    def validate(self) -> RunSettings:
        return run_settings(self.variables())

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        try:
            settings = self.validate()
        except ConfigurationError as exc:
            self._invalid(exc)
            return
        if settings.debug_mode:
            try:
                handler = logging.FileHandler(settings.debug_log_file, encoding="utf-8")
            except OSError as exc:
                reason = f"{settings.debug_log_file!r} cannot be opened for writing ({exc.strerror})"
                self._invalid(ConfigurationError({"DEBUG_LOG_FILE": reason}))
                return
            handler.setFormatter(logging.Formatter(_FORMAT))
            self._file_handler = handler
        self._settings = settings
        package = logging.getLogger(PACKAGE_LOGGER)
        self._previous_level = package.level
        package.setLevel(logging.DEBUG if settings.debug_mode else logging.INFO)
        if self._file_handler is not None:
            package.addHandler(self._file_handler)
        for noisy in _NOISY_LOGGERS:
            logging.getLogger(noisy).setLevel(logging.WARNING)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        package = logging.getLogger(PACKAGE_LOGGER)
        if self._file_handler is not None:
            package.removeHandler(self._file_handler)
            self._file_handler.close()
        if self._settings is not None:
            package.setLevel(self._previous_level)

    @property
    def settings(self) -> RunSettings:
        if self._settings is None:
            raise ConfigurationError(self.problems or {"TEST_MODE": "the run options were not set up"})
        return self._settings
