"""Settings for both daemons, read from environment variables.

`load_settings(environ)` checks every variable, collects every problem and
raises one `ConfigError` naming them all; the entry points print it and exit 2.
Values leave this module in their real types, so later code never parses
strings.
"""
from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytz

from modules.plugins import PLUGIN_NAMES
from utils.webconfig import WebConfig, WebConfigError, load_web_config

# Plugins the daily daemon manages by default: every entry of the plugin table
# (modules/plugins.py). PLUGINS narrows this list.
DEFAULT_PLUGINS = PLUGIN_NAMES
PROJECT_NAME_FIELDS = {"plugin", "name", "full_name", "connection_id", "connection_name", "scope_id"}
DOMAIN_TYPES = {"CODE", "TICKET", "CODEREVIEW", "CROSS", "CICD", "CODEQUALITY"}
LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR"}
ENV_PREFIX_HINT = "see README.md, section Configuration"
MINUTES_PER_DAY = 24 * 60
# 22:00-06:00 in TIMEZONE: after the 18:00 daily run has had four hours for its budgeted first
# collections and reruns, and finished before the working day (README: "Collection at scale").
DEFAULT_COLLECTION_WINDOW = "22:00-06:00"
# How many pending pipelines (queued or running, all of DevLake) the daemon lets its own triggers
# reach; README explains the choice.
DEFAULT_MAX_PENDING_PIPELINES = 10


class ConfigError(Exception):
    """Every configuration problem found, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = ["invalid configuration:"] + [f"  - {p}" for p in self.problems]
        lines.append(f"({ENV_PREFIX_HINT})")
        return "\n".join(lines)


@dataclass(frozen=True)
class CollectionWindow:
    """A daily period in minutes of the local day; `end <= start` means it crosses midnight."""

    start: int  # minute of the day, 0..1439
    end: int    # minute of the day, 1..1440 (24:00 is allowed as an end)

    @property
    def minutes(self) -> int:
        """Length in minutes, 1..1440."""
        return (self.end - self.start) % MINUTES_PER_DAY or MINUTES_PER_DAY

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"

    @classmethod
    def parse(cls, value: str) -> CollectionWindow:
        """`HH:MM-HH:MM`; the end may be `24:00`; a zero-length window is a ValueError."""
        match = re.fullmatch(r"(\d\d):(\d\d)\s*-\s*(\d\d):(\d\d)", value)
        if not match:
            raise ValueError(value)
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or end > MINUTES_PER_DAY or start == end:
            raise ValueError(value)
        return cls(start, end)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass(frozen=True)
class Settings:
    devlake_url: str
    api_key: str | None = field(default=None, repr=False)
    timezone: pytz.BaseTzInfo = field(default_factory=lambda: pytz.timezone("Asia/Ho_Chi_Minh"))
    daily_run_time: str = "18:00"
    plugins: tuple[str, ...] = DEFAULT_PLUGINS
    project_name_template: str = "{plugin}/{name}"
    project_metrics: tuple[str, ...] = ("dora",)
    blueprint_cron: str | None = None
    # Managed blueprints' daily start minutes are spread over this window (in `timezone`) and
    # converted to `devlake_timezone`, where DevLake evaluates cronConfig.
    collection_window: CollectionWindow = field(
        default_factory=lambda: CollectionWindow.parse(DEFAULT_COLLECTION_WINDOW))
    devlake_timezone: pytz.BaseTzInfo = field(default_factory=lambda: pytz.utc)
    # Triggers (first collections, reruns) start only while DevLake's pending pipelines stay below
    # this; 0 means the daemon starts none and leaves all to the crons.
    max_pending_pipelines: int = DEFAULT_MAX_PENDING_PIPELINES
    trigger_new_blueprints: bool = True
    max_reruns: int = 1
    # A managed blueprint whose scope left its connection's complete listing this many days ago is
    # retired (disabled, labelled); 0 retires at once, None (`off`) neither marks nor retires.
    retire_missing_after_days: int | None = 7
    retry_failed_after_minutes: float = 30.0
    retry_failed_times: int = 3
    scope_config_entities: tuple[str, ...] | None = None
    deployment_pattern: str | None = None
    production_pattern: str | None = None
    timeout_seconds: float = 30.0
    max_concurrency: int = 8
    http_retries: int = 5
    retry_backoff_seconds: float = 1.0
    state_dir: Path = Path("state")
    log_level: str = "INFO"
    log_format: str = "json"
    # blueprint_monitor.py
    poll_interval_seconds: float = 300.0
    metrics_addr: str = "0.0.0.0"
    metrics_port: int = 9100
    failure_series_retention_days: float = 7.0
    monitor_lookback_hours: float = 24.0
    # Enables POST /notifications (DevLake's signed pipeline notifications) on METRICS_PORT.
    notification_secret: str | None = field(default=None, repr=False)
    # The status page (GET / and /status.json on METRICS_PORT)
    stuck_after_minutes: float = 360.0  # as the DevLakePipelineStuck alert (prometheus/alerts.yml)
    # The status page's 'stale', and exported as devlake_monitor_stale_after_seconds for the
    # DevLakeProjectNoRecentSuccess alert: one setting for both.
    stale_after_hours: float = 72.0
    status_refresh_seconds: float = 60.0  # 0: the page never reloads itself
    devlake_ui_url: str | None = None  # config-ui's base URL, for a link per project
    # WEB_CONFIG_FILE: TLS and basic auth on METRICS_PORT (exporter-toolkit format); None = plain HTTP, open.
    web_config: WebConfig | None = field(default=None, repr=False)
    # DevLake's test of each connection of PLUGINS (`docs/devlake-api.md` §9.6); 0 turns it off.
    connection_check_interval_seconds: float = 3600.0

    @property
    def api_base_url(self) -> str:
        """Where requests go: DevLake checks API keys only under /rest (`docs/devlake-api.md` §1.2)."""
        if self.api_key and not self.devlake_url.endswith("/rest"):
            return self.devlake_url + "/rest"
        return self.devlake_url

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for the log redactor: the API key, the notification secret and
        the password of DEVLAKE_URL's user info (config-ui behind basic auth)."""
        password = urlsplit(self.devlake_url).password if self.devlake_url else None
        return tuple(s for s in (self.api_key, self.notification_secret, password) if s)

    def redacted(self) -> dict:
        """The effective configuration for the startup log line, secrets masked."""
        out = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name in ("api_key", "notification_secret"):
                value = "***" if value else None
            elif name in ("devlake_url", "devlake_ui_url") and value:
                value = without_password(value)
            elif isinstance(value, WebConfig):
                value = value.summary()
            elif isinstance(value, (Path, pytz.BaseTzInfo, CollectionWindow)):
                value = str(value)
            out[name] = value
        return out


class _Reader:
    """Reads and converts variables, recording problems instead of raising."""

    def __init__(self, environ: Mapping[str, str]):
        self.env = environ
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def convert(self, name: str, default, parse: Callable[[str], object], expected: str):
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse(value)
        except (ValueError, TypeError, KeyError, re.error, pytz.UnknownTimeZoneError):
            self.problems.append(f"{name}={value!r} is not valid: expected {expected}")
            return default

    def number(self, name, default, kind, minimum, expected=None):
        def parse(v):
            n = kind(v)
            if not minimum <= n < float("inf"):  # also rejects nan
                raise ValueError
            return n
        what = expected or f"{'an integer' if kind is int else 'a number'} >= {minimum}"
        return self.convert(name, default, parse, what)

    def boolean(self, name, default):
        table = {"1": True, "true": True, "yes": True, "on": True,
                 "0": False, "false": False, "no": False, "off": False}
        return self.convert(name, default, lambda v: table[v.lower()], "true or false")

    def csv(self, name, default):
        return self.convert(name, default, _split_csv, "a comma-separated list")


def _split_csv(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


def _parse_url(name: str, value: str | None, problems: list[str]) -> str:
    if value is None:
        problems.append(
            f"{name} is required: the DevLake backend (http://devlake:8080) "
            "or config-ui API (http://devlake-ui:4000/api)")
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(f"{name}={_shown(value)!r} is not valid: expected an http:// or https:// URL")
        return ""
    if parts.query or parts.fragment:
        problems.append(f"{name}={_shown(value)!r} is not valid: it must not have a query or fragment")
    return value.rstrip("/")


def _shown(url: str) -> str:
    """A URL as an error message may show it: no password, no query or fragment (tokens hide there)."""
    try:
        parts = urlsplit(without_password(url))
    except ValueError:
        return "<unparsable URL>"
    hidden = "?…" if parts.query or parts.fragment else ""
    return parts._replace(query="", fragment="").geturl() + hidden


def without_password(url: str) -> str:
    """The URL with the password of its user info (http://user:password@host) replaced by ***.

    requests sends such a URL's user info as basic auth (config-ui behind nginx's
    basic auth); the URL itself is logged at start and shown on the status page.
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def _parse_optional_url(name: str, value: str | None, problems: list[str]) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        problems.append(f"{name}={_shown(value)!r} is not valid: expected an http:// or https:// URL without query")
        return None
    if parts.password is not None:  # it becomes a link on the status page, for every viewer to read
        problems.append(f"{name}={_shown(value)!r} is not valid: it must not contain a password")
        return None
    return value.rstrip("/")


def _parse_positive(value: str) -> float:
    number = float(value)
    if not number > 0 or number == float("inf"):  # also rejects nan
        raise ValueError
    return number


def _parse_refresh(value: str) -> float:
    # Under 5 s a few open tabs would keep the monitor busy rendering for nothing.
    number = float(value)
    if not (number == 0 or 5 <= number < float("inf")):
        raise ValueError
    return number


def _parse_days_or_off(value: str) -> int | None:
    if value.lower() == "off":
        return None
    days = int(value)
    if days < 0:
        raise ValueError(value)
    return days


def _parse_time_of_day(value: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?", value):
        raise ValueError
    return value


def _parse_template(value: str) -> str:
    names = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
    if not names or not names <= PROJECT_NAME_FIELDS:
        raise ValueError
    return value


def _parse_entities(value: str) -> tuple[str, ...]:
    items = tuple(e.upper() for e in _split_csv(value))
    if not items or not set(items) <= DOMAIN_TYPES:
        raise ValueError
    return items


def _parse_regex(value: str) -> str:
    re.compile(value)
    return value


def _parse_cron(value: str) -> str:
    # DevLake accepts 5-field crons, @-descriptors and "manual" (`docs/devlake-api.md` §8.1).
    if value == "manual" or re.fullmatch(r"@(yearly|annually|monthly|weekly|daily|midnight|hourly|every \S+)", value):
        return value
    if len(value.split()) != 5:
        raise ValueError
    return value


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping, or raise ConfigError naming every problem."""
    r = _Reader(environ)
    url = _parse_url("DEVLAKE_URL", r.raw("DEVLAKE_URL"), r.problems)
    plugins = r.csv("PLUGINS", DEFAULT_PLUGINS)
    if not plugins:
        r.problems.append("PLUGINS is empty: name at least one plugin, or unset it for all")
    unknown = [p for p in plugins if p not in DEFAULT_PLUGINS]
    if unknown:  # a typo would otherwise find no connection and pass silently
        r.problems.append(f"PLUGINS names {', '.join(unknown)}: the daemons know only "
                          + ", ".join(DEFAULT_PLUGINS))
    metrics = r.raw("PROJECT_METRICS")
    project_metrics = ("dora",) if metrics is None else (
        () if metrics.lower() == "none" else _split_csv(metrics))
    values = dict(
        devlake_url=url,
        api_key=r.raw("DEVLAKE_API_KEY"),
        timezone=r.convert("TIMEZONE", pytz.timezone("Asia/Ho_Chi_Minh"), pytz.timezone,
                           "an IANA time zone such as Asia/Ho_Chi_Minh"),
        daily_run_time=r.convert("DAILY_RUN_TIME", "18:00", _parse_time_of_day, "HH:MM or HH:MM:SS"),
        plugins=plugins,
        project_name_template=r.convert(
            "PROJECT_NAME_TEMPLATE", "{plugin}/{name}", _parse_template,
            "a template using only " + ", ".join(f"{{{f}}}" for f in sorted(PROJECT_NAME_FIELDS))),
        project_metrics=project_metrics,
        blueprint_cron=r.convert("BLUEPRINT_CRON", None, _parse_cron,
                                 "a 5-field cron, an @-descriptor such as @daily, or manual"),
        collection_window=r.convert(
            "COLLECTION_WINDOW", CollectionWindow.parse(DEFAULT_COLLECTION_WINDOW), CollectionWindow.parse,
            "HH:MM-HH:MM in TIMEZONE, not empty (it may cross midnight, e.g. 22:00-06:00)"),
        # DevLake's cron runs in UTC (backend/server/services/init.go: cron.WithLocation(time.UTC));
        # only a patched DevLake needs another value here.
        devlake_timezone=r.convert("DEVLAKE_TIMEZONE", pytz.utc, pytz.timezone,
                                   "an IANA time zone such as UTC"),
        max_pending_pipelines=r.number("MAX_PENDING_PIPELINES", DEFAULT_MAX_PENDING_PIPELINES, int, 0),
        trigger_new_blueprints=r.boolean("TRIGGER_NEW_BLUEPRINTS", True),
        max_reruns=r.number("MAX_RERUNS", 1, int, 0),
        retire_missing_after_days=r.convert("RETIRE_MISSING_AFTER_DAYS", 7, _parse_days_or_off,
                                            "a number of days >= 0, or off"),
        retry_failed_after_minutes=r.number("RETRY_FAILED_AFTER_MINUTES", 30.0, float, 0.1),
        retry_failed_times=r.number("RETRY_FAILED_TIMES", 3, int, 0),
        scope_config_entities=r.convert(
            "SCOPE_CONFIG_ENTITIES", None, _parse_entities,
            "a comma-separated list of " + ", ".join(sorted(DOMAIN_TYPES))),
        deployment_pattern=r.convert("DEPLOYMENT_PATTERN", None, _parse_regex, "a regular expression"),
        production_pattern=r.convert("PRODUCTION_PATTERN", None, _parse_regex, "a regular expression"),
        timeout_seconds=r.number("DEVLAKE_TIMEOUT_SECONDS", 30.0, float, 0.1),
        max_concurrency=r.number("DEVLAKE_MAX_CONCURRENCY", 8, int, 1),
        http_retries=r.number("DEVLAKE_HTTP_RETRIES", 5, int, 0),
        retry_backoff_seconds=r.number("DEVLAKE_RETRY_BACKOFF_SECONDS", 1.0, float, 0.0),
        state_dir=Path(r.raw("STATE_DIR") or "state"),
        log_level=r.convert("LOG_LEVEL", "INFO", _choice(LOG_LEVELS), "one of " + ", ".join(sorted(LOG_LEVELS))),
        log_format=r.convert("LOG_FORMAT", "json", _choice({"JSON", "CONSOLE"}, lower=True), "json or console"),
        poll_interval_seconds=r.number("POLL_INTERVAL_SECONDS", 300.0, float, 1.0),
        metrics_addr=r.raw("METRICS_ADDR") or "0.0.0.0",
        metrics_port=r.number("METRICS_PORT", 9100, int, 0, "a port number 0-65535"),
        failure_series_retention_days=r.number("FAILURE_SERIES_RETENTION_DAYS", 7.0, float, 0.0),
        monitor_lookback_hours=r.number("MONITOR_LOOKBACK_HOURS", 24.0, float, 0.0),
        notification_secret=r.raw("NOTIFICATION_SECRET"),
        stuck_after_minutes=r.convert("STUCK_AFTER_MINUTES", 360.0, _parse_positive, "a number of minutes > 0"),
        stale_after_hours=r.convert("STALE_AFTER_HOURS", 72.0, _parse_positive, "a number of hours > 0"),
        status_refresh_seconds=r.convert("STATUS_REFRESH_SECONDS", 60.0, _parse_refresh,
                                         "0 (no reload) or a number of seconds >= 5"),
        devlake_ui_url=_parse_optional_url("DEVLAKE_UI_URL", r.raw("DEVLAKE_UI_URL"), r.problems),
        web_config=_web_config(r.raw("WEB_CONFIG_FILE"), r.problems),
        connection_check_interval_seconds=r.number("CONNECTION_CHECK_INTERVAL_SECONDS", 3600.0, float, 0.0),
    )
    if values["metrics_port"] > 65535:
        r.problems.append(f"METRICS_PORT={values['metrics_port']} is not valid: expected a port number 0-65535")
    if r.problems:
        raise ConfigError(r.problems)
    return Settings(**values)


def _web_config(value: str | None, problems: list[str]) -> WebConfig | None:
    if value is None:
        return None
    try:
        return load_web_config(Path(value))
    except WebConfigError as exc:
        problems.extend(f"WEB_CONFIG_FILE={value!r}: {problem}" for problem in exc.problems)
        return None


def _choice(allowed: set[str], lower: bool = False) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value.upper() not in allowed:
            raise ValueError
        return value.lower() if lower else value.upper()
    return parse
