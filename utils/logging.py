"""structlog set-up: JSON lines on stderr, timestamps in TIMEZONE, secrets redacted.

Logs go to stderr so stdout stays free for machine output (`--dry-run`'s plan,
the monitor's `--once` exposition); `docker logs` shows both streams.
"""
from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from utils.redact import mask_authorization

REDACTED = "***"
SECRET_KEYS = {"token", "authorization", "api_key", "apikey", "password", "secret",
               "secretkey", "refreshtoken", "notification_secret"}


class SecretRedactor:
    """Masks secret-named fields and any occurrence of known secret values."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets = [s for s in secrets if s]

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        return {k: self._clean(k, v) for k, v in event_dict.items()}

    def _clean(self, key: object, value: object) -> object:
        """`value` with secrets masked; `key` is its field name, a nested dict's key, or None in a list."""
        if isinstance(key, str) and key.lower().replace("-", "_") in SECRET_KEYS and value:
            return REDACTED
        if isinstance(value, str):
            value = mask_authorization(value)
            for secret in self.secrets:
                value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self._clean(k, v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._clean(None, v) for v in value]
        return value


# json.dumps escapes C0 controls itself; with ensure_ascii=False it leaves DEL, the C1 controls and
# U+2028/U+2029 raw: a log viewer or a JavaScript consumer may take them for line breaks or
# terminal commands, so a hostile project name could forge or hide log lines.
_RAW_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029]")


def dumps_escaped(obj: object, **kwargs: Any) -> str:
    """json.dumps, readable UTF-8 kept, with every control and line-separator character escaped.

    `kwargs` are json.dumps's own (structlog's JSONRenderer passes `default`), handed on as they are.
    """
    text = json.dumps(obj, ensure_ascii=False, **kwargs)
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class LocalTimeStamper:
    """ISO 8601 timestamps in the operator's time zone (e.g. +07:00)."""

    def __init__(self, tz: tzinfo, clock: Callable[[], datetime] | None = None) -> None:
        self.tz = tz
        self.clock = clock or (lambda: datetime.now(tz))

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict["timestamp"] = self.clock().astimezone(self.tz).isoformat(timespec="milliseconds")
        return event_dict


def configure_logging(level: str = "INFO", fmt: str = "json", tz: tzinfo | None = None,
                      secrets: Iterable[str | None] = (), stream: TextIO | None = None) -> None:
    """Configure structlog once, from an entry point."""
    import pytz
    # ensure_ascii=False: project names in Vietnamese, CJK or Cyrillic stay readable in `docker logs`.
    renderer = (structlog.processors.JSONRenderer(serializer=dumps_escaped) if fmt == "json"
                else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            LocalTimeStamper(tz or pytz.UTC),
            # No locals in tracebacks: they could hold a session with the API key.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False))
            if fmt == "json" else structlog.processors.format_exc_info,
            SecretRedactor(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
