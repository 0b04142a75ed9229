"""Settings for both daemons, read from environment variables.

Each setting is declared once, as a field of `Settings` (utils/env_values.py: variable,
default, parser with its bounds, help, which daemon reads it). `load_settings(environ)`
checks every variable, collects every problem and raises one `ConfigError` naming them
all; the entry points print it and exit 2. Values leave this module in their real types,
so later code never parses strings.
"""
from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytz

from modules.plugins import PLUGIN_NAMES
from utils.cron import CronError, check_cron
from utils.env_values import REQUIRED, Invalid, Number, Parser, declared, help_lines, read_fields, setting
from utils.urls import parse_ui_url, parse_url, shown_in_message, without_password
from utils.webconfig import WebConfig, WebConfigError, load_web_config

# Plugins the daily daemon manages by default: every entry of the plugin table
# (modules/plugins.py). PLUGINS narrows this list.
DEFAULT_PLUGINS = PLUGIN_NAMES
PROJECT_NAME_FIELDS = {"plugin", "name", "full_name", "connection_id", "connection_name", "scope_id"}
DOMAIN_TYPES = {"CODE", "TICKET", "CODEREVIEW", "CROSS", "CICD", "CODEQUALITY"}
LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR"}
ENV_PREFIX_HINT = "every variable and what it allows: docs/configuration.md"
MINUTES_PER_DAY = 24 * 60
SECONDS_PER_DAY = 24 * 3600
# DevLake's project names are at most 100 bytes (modules/projects.py): a wider field only builds
# a huge string ("{name:999999999}" ate the memory, issue 21).
MAX_TEMPLATE_WIDTH = 100
MIN_SECRET_LENGTH = 16
# 22:00-06:00 in TIMEZONE: after the 18:00 daily run has had four hours for its budgeted first
# collections and reruns, and finished before the working day (README: "Collection at scale").
DEFAULT_COLLECTION_WINDOW = "22:00-06:00"
# How many pending pipelines (queued or running, all of DevLake) the daemon lets its own triggers
# reach; README explains the choice.
DEFAULT_MAX_PENDING_PIPELINES = 10
RETIRE_DAYS = Number(int, 0, 365, "days")
CRON_ALLOWED = "a 5-field cron, an @-descriptor such as @daily, or manual"


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


def _split_csv(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


def _parse_plugins(value: str) -> tuple[str, ...]:
    plugins = _split_csv(value)
    if not plugins:
        raise Invalid(" is empty: name at least one plugin, or unset it for all")
    unknown = [p for p in plugins if p not in DEFAULT_PLUGINS]
    if unknown:  # a typo would otherwise find no connection and pass silently
        raise Invalid(f" names {', '.join(unknown)}: the daemons know only " + ", ".join(DEFAULT_PLUGINS))
    return plugins


def _parse_metrics(value: str) -> tuple[str, ...]:
    return () if value.lower() == "none" else _split_csv(value)


def _parse_boolean(value: str) -> bool:
    table = {"1": True, "true": True, "yes": True, "on": True,
             "0": False, "false": False, "no": False, "off": False}
    return table[value.lower()]


def _parse_days_or_off(value: str) -> int | None:
    return None if value.lower() == "off" else RETIRE_DAYS(value)


def _parse_time_of_day(value: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?", value):
        raise ValueError
    return value


def _parse_template(value: str) -> str:
    parsed = list(string.Formatter().parse(value))
    names = {f for _, f, _, _ in parsed if f is not None}
    if not names or not names <= PROJECT_NAME_FIELDS:
        raise ValueError
    for _, _, spec, _ in parsed:
        # a width past DevLake's 100-byte names only builds a huge string ("{name:999999999}")
        if spec and ("{" in spec or any(int(n) > MAX_TEMPLATE_WIDTH for n in re.findall(r"\d+", spec))):
            raise ValueError
    value.format(plugin="github", name="api", full_name="org/api", connection_id=1,
                 connection_name="gh", scope_id="1")  # a spec the values cannot take fails here
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
    # DevLake accepts robfig/cron's standard crons and descriptors, and "manual" (`docs/devlake-api.md` §8.1)
    if value == "manual":
        return value
    try:
        check_cron(value)
    except CronError as exc:
        raise Invalid(f"={value!r} is not valid: {exc} (expected {CRON_ALLOWED})") from None
    return value


def _parse_secret(value: str) -> str:
    # a short secret is guessable, and the log redactor would mask each of its occurrences everywhere
    if len(value) < MIN_SECRET_LENGTH:
        count = f"{len(value)} character" + ("s" if len(value) > 1 else "")
        raise Invalid(f" is too short ({count}): it needs at least {MIN_SECRET_LENGTH} (e.g. openssl rand -hex 32)")
    return value


def _parse_web_config(value: str) -> WebConfig:
    try:
        return load_web_config(Path(value))
    except WebConfigError as exc:
        raise Invalid(*(f"={value!r}: {problem}" for problem in exc.problems)) from None


def _choice(allowed: set[str], lower: bool = False) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value.upper() not in allowed:
            raise ValueError
        return value.lower() if lower else value.upper()
    return parse


A, M, BOTH = "automation", "monitor", "both"


@dataclass(frozen=True)
class Settings:
    """Every setting, declared once: variable, default, parser and bounds, help, reader.

    `load_settings` reads these declarations, --help lists them (`settings_help`) and
    tests/deploy checks docs/configuration.md's table against them.
    """

    devlake_url: str = setting(
        "DEVLAKE_URL", REQUIRED, Parser(parse_url, "an http:// or https:// URL without query"),
        "the DevLake backend (http://devlake:8080) or config-ui API (http://devlake-ui:4000/api)",
        used_by=BOTH, show_value=shown_in_message)
    api_key: str | None = setting(
        "DEVLAKE_API_KEY", None, Parser(str, "a DevLake API key"),
        "sent as a Bearer token; requests then go under /rest", used_by=BOTH, secret=True)
    timezone: pytz.BaseTzInfo = setting(
        "TIMEZONE", pytz.timezone("Asia/Ho_Chi_Minh"), Parser(pytz.timezone, "an IANA time zone"),
        "daily run time, timeAfter, log timestamps, time_failed labels, status page times", used_by=BOTH)
    daily_run_time: str = setting(
        "DAILY_RUN_TIME", "18:00", Parser(_parse_time_of_day, "HH:MM or HH:MM:SS"),
        "when the daily run starts, in TIMEZONE", used_by=A)
    plugins: tuple[str, ...] = setting(
        "PLUGINS", DEFAULT_PLUGINS, Parser(_parse_plugins, "a comma-separated list of " + ",".join(DEFAULT_PLUGINS)),
        "plugins managed by the automation and whose connections the monitor tests", used_by=BOTH,
        shown="all eight")
    project_name_template: str = setting(
        "PROJECT_NAME_TEMPLATE", "{plugin}/{name}",
        Parser(_parse_template, "a template using only " + ", ".join(f"{{{f}}}" for f in sorted(PROJECT_NAME_FIELDS))
               + f", widths at most {MAX_TEMPLATE_WIDTH}"),
        "a new project's name", used_by=A)
    project_metrics: tuple[str, ...] = setting(
        "PROJECT_METRICS", ("dora",), Parser(_parse_metrics, "a comma-separated list of metric plugins, or none"),
        "metrics enabled on new projects", used_by=A)
    blueprint_cron: str | None = setting(
        "BLUEPRINT_CRON", None, Parser(_parse_cron, CRON_ALLOWED),
        "one cron (in DEVLAKE_TIMEZONE) for every managed blueprint instead of COLLECTION_WINDOW", used_by=A,
        shown="– (spread over `COLLECTION_WINDOW`)")
    # Managed blueprints' daily start minutes are spread over this window (in `timezone`) and
    # converted to `devlake_timezone`, where DevLake evaluates cronConfig.
    collection_window: CollectionWindow = setting(
        "COLLECTION_WINDOW", CollectionWindow.parse(DEFAULT_COLLECTION_WINDOW),
        Parser(CollectionWindow.parse, "HH:MM-HH:MM in TIMEZONE, not empty (it may cross midnight, e.g. 22:00-06:00)"),
        "each managed blueprint's daily start minute lies in it", used_by=A)
    # DevLake's cron runs in UTC (backend/server/services/init.go: cron.WithLocation(time.UTC));
    # only a patched DevLake needs another value here.
    devlake_timezone: pytz.BaseTzInfo = setting(
        "DEVLAKE_TIMEZONE", pytz.utc, Parser(pytz.timezone, "an IANA time zone"),
        "the zone DevLake evaluates crons in", used_by=A)
    # Triggers (first collections, reruns) start only while DevLake's pending pipelines stay below
    # this; 0 means the daemon starts none and leaves all to the crons.
    max_pending_pipelines: int = setting(
        "MAX_PENDING_PIPELINES", DEFAULT_MAX_PENDING_PIPELINES, Number(int, 0, 1000),
        "start collections only while DevLake's queue holds fewer pipelines; 0 = none", used_by=A)
    trigger_new_blueprints: bool = setting(
        "TRIGGER_NEW_BLUEPRINTS", True, Parser(_parse_boolean, "true or false"),
        "start a first collection of blueprints a run created", used_by=A)
    max_reruns: int = setting(
        "MAX_RERUNS", 1, Number(int, 0, 10), "reruns of a managed blueprint's failed pipeline", used_by=A)
    # A managed blueprint whose scope left its connection's complete listing this many days ago is
    # retired (disabled, labelled); 0 retires at once, None (`off`) neither marks nor retires.
    retire_missing_after_days: int | None = setting(
        "RETIRE_MISSING_AFTER_DAYS", 7, Parser(_parse_days_or_off, f"{RETIRE_DAYS.allowed}, or off"),
        "disable a blueprint whose repository left upstream this long ago", used_by=A)
    retry_failed_after_minutes: float = setting(
        "RETRY_FAILED_AFTER_MINUTES", 30.0, Number(float, 0.1, MINUTES_PER_DAY, "minutes"),
        "retry a run's failed items this much later, the same day", used_by=A)
    retry_failed_times: int = setting(
        "RETRY_FAILED_TIMES", 3, Number(int, 0, 100), "at most this many same-day retries", used_by=A)
    scope_config_entities: tuple[str, ...] | None = setting(
        "SCOPE_CONFIG_ENTITIES", None,
        Parser(_parse_entities, "a comma-separated list of " + ", ".join(sorted(DOMAIN_TYPES))),
        "entities of the managed scope configs", used_by=A, shown="per plugin")
    deployment_pattern: str | None = setting(
        "DEPLOYMENT_PATTERN", None, Parser(_parse_regex, "a regular expression"),
        "DORA deployments' regex, where the plugin has one", used_by=A, shown="per plugin")
    production_pattern: str | None = setting(
        "PRODUCTION_PATTERN", None, Parser(_parse_regex, "a regular expression"),
        "DORA production's regex, where the plugin has one", used_by=A, shown="per plugin")
    timeout_seconds: float = setting(
        "DEVLAKE_TIMEOUT_SECONDS", 30.0, Number(float, 0.1, 600, "seconds"),
        "timeout of each DevLake request", used_by=BOTH)
    max_concurrency: int = setting(
        "DEVLAKE_MAX_CONCURRENCY", 8, Number(int, 1, 64), "parallel requests towards DevLake", used_by=A)
    http_retries: int = setting(
        "DEVLAKE_HTTP_RETRIES", 5, Number(int, 0, 20), "retries of a failed DevLake request", used_by=BOTH)
    retry_backoff_seconds: float = setting(
        "DEVLAKE_RETRY_BACKOFF_SECONDS", 1.0, Number(float, 0, 60, "seconds"),
        "exponential backoff factor of those retries", used_by=BOTH)
    state_dir: Path = setting(
        "STATE_DIR", Path("state"), Parser(Path, "a directory"),
        "state files, shared by both daemons", used_by=BOTH,
        shown="`state` (image: `/var/lib/devlake-automation`)")
    log_level: str = setting(
        "LOG_LEVEL", "INFO", Parser(_choice(LOG_LEVELS), "one of " + ", ".join(sorted(LOG_LEVELS))),
        "the lowest level logged", used_by=BOTH)
    log_format: str = setting(
        "LOG_FORMAT", "json", Parser(_choice({"JSON", "CONSOLE"}, lower=True), "json or console"),
        "one JSON object per line, or console", used_by=BOTH)
    poll_interval_seconds: float = setting(
        "POLL_INTERVAL_SECONDS", 300.0, Number(float, 1, SECONDS_PER_DAY, "seconds"),
        "seconds between DevLake polls", used_by=M)
    metrics_addr: str = setting(
        "METRICS_ADDR", "0.0.0.0", Parser(str, "an address to listen on"),
        "where /metrics, /healthz and the status page listen", used_by=M)
    metrics_port: int = setting(
        "METRICS_PORT", 9100, Number(int, 0, 65535), "their port (9100 is also node_exporter's)", used_by=M)
    failure_series_retention_days: float = setting(
        "FAILURE_SERIES_RETENTION_DAYS", 7.0, Number(float, 0, 365, "days"),
        "keep devlake_blueprint_failure_total series this long", used_by=M)
    monitor_lookback_hours: float = setting(
        "MONITOR_LOOKBACK_HOURS", 24.0, Number(float, 0, 8760, "hours"),
        "on the very first start, count failures this recent", used_by=M)
    # Enables POST /notifications (DevLake's signed pipeline notifications) on METRICS_PORT.
    notification_secret: str | None = setting(
        "NOTIFICATION_SECRET", None, Parser(_parse_secret, f"at least {MIN_SECRET_LENGTH} characters"),
        "DevLake's NOTIFICATION_SECRET: enables POST /notifications", used_by=M, secret=True,
        shown="– (off)")
    # The status page (GET / and /status.json on METRICS_PORT)
    stuck_after_minutes: float = setting(  # as the DevLakePipelineStuck alert (prometheus/alerts.yml)
        "STUCK_AFTER_MINUTES", 360.0, Number(float, 0, 7 * MINUTES_PER_DAY, "minutes", low_open=True),
        "status page: a pipeline queued or running longer is stuck", used_by=M)
    # The status page's 'stale', and exported as devlake_monitor_stale_after_seconds for the
    # DevLakeProjectNoRecentSuccess alert: one setting for both.
    stale_after_hours: float = setting(
        "STALE_AFTER_HOURS", 72.0, Number(float, 0, 8760, "hours", low_open=True),
        "a project without a success for longer is stale: status page and alert", used_by=M)
    status_refresh_seconds: float = setting(  # under 5 s a few open tabs keep the monitor rendering
        "STATUS_REFRESH_SECONDS", 60.0, Number(float, 5, 3600, "seconds", zero="never"),
        "the status page reloads itself this often", used_by=M)
    devlake_ui_url: str | None = setting(  # config-ui's base URL, for a link per project
        "DEVLAKE_UI_URL", None, Parser(parse_ui_url, "an http:// or https:// URL without query or password"),
        "config-ui's URL, e.g. http://devlake-ui:4000: a link per project", used_by=M, show_value=shown_in_message)
    # TLS and basic auth on METRICS_PORT (exporter-toolkit format); None = plain HTTP, open.
    web_config: WebConfig | None = setting(
        "WEB_CONFIG_FILE", None, Parser(_parse_web_config, "a web config file (Prometheus exporter-toolkit format)"),
        "TLS and basic auth on METRICS_PORT", used_by=M, repr=False, shown="– (plain HTTP, open)")
    # DevLake's test of each connection of PLUGINS (`docs/devlake-api.md` §9.6); 0 turns it off.
    connection_check_interval_seconds: float = setting(
        "CONNECTION_CHECK_INTERVAL_SECONDS", 3600.0, Number(float, 0, SECONDS_PER_DAY, "seconds"),
        "test every connection of PLUGINS this often; 0 = off", used_by=M)

    @property
    def api_base_url(self) -> str:
        """Where requests go: DevLake checks API keys only under /rest (`docs/devlake-api.md` §1.2)."""
        if self.api_key and not self.devlake_url.endswith("/rest"):
            return self.devlake_url + "/rest"
        return self.devlake_url

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for the log redactor: the secret settings (API key, notification
        secret) and the password of DEVLAKE_URL's user info (config-ui behind basic auth)."""
        password = urlsplit(self.devlake_url).password if self.devlake_url else None
        values = [getattr(self, name) for name, var in declared(Settings) if var.secret]
        return tuple(s for s in (*values, password) if s)

    def redacted(self) -> dict[str, object]:
        """The effective configuration for the startup log line, secrets masked."""
        out: dict[str, object] = {}
        for name, var in declared(Settings):
            value = getattr(self, name)
            if var.secret:
                value = "***" if value else None
            elif name in ("devlake_url", "devlake_ui_url") and value:
                value = without_password(value)
            elif isinstance(value, WebConfig):
                value = value.summary()
            elif isinstance(value, (Path, pytz.BaseTzInfo, CollectionWindow)):
                value = str(value)
            out[name] = value
        return out


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping, or raise ConfigError naming every problem."""
    problems: list[str] = []
    values = read_fields(Settings, environ, problems)
    problems.extend(_conflicts(values["api_key"], values["devlake_url"]))
    if problems:
        raise ConfigError(problems)
    return Settings(**values)


def _conflicts(api_key: str | None, url: str | None) -> list[str]:
    """Problems of settings that are each valid but not together (None: unset, or invalid and reported)."""
    if api_key and url and urlsplit(url).username is not None:
        # requests would send the URL's user info as basic auth, replacing the Bearer header:
        # every call 401, with a hint blaming the key (issue 21). One credential, stated.
        return ["DEVLAKE_API_KEY and user info in DEVLAKE_URL (user:password@) cannot go together: "
                "both become the Authorization header; keep the API key, or the URL's user info for "
                "config-ui behind basic auth without DevLake API keys"]
    return []


def settings_help(daemon: str) -> str:
    """The variables `daemon` ("automation" or "monitor") reads, for its --help."""
    return "\n".join(help_lines(Settings, daemon))


def default_of(env: str) -> object:
    """The declared default of the variable `env` (for a reader that needs one setting only)."""
    return next(var.default for _, var in declared(Settings) if var.env == env)


def setting_names() -> tuple[str, ...]:
    """Every variable config.py reads."""
    return tuple(var.env for _, var in declared(Settings))
