from pathlib import Path

import pytest

from config import ConfigError, load_settings


def test_minimal_config_uses_documented_defaults():
    s = load_settings({"DEVLAKE_URL": "http://devlake:8080/"})
    assert s.devlake_url == "http://devlake:8080"
    assert s.api_base_url == "http://devlake:8080"
    assert str(s.timezone) == "Asia/Ho_Chi_Minh"
    assert s.daily_run_time == "18:00"
    assert s.project_name_template == "{plugin}/{name}"
    assert s.project_metrics == ("dora",)
    assert s.max_reruns == 1 and s.trigger_new_blueprints is True
    assert s.blueprint_cron is None
    assert "azuredevops_go" in s.plugins and len(s.plugins) == 8
    assert s.metrics_port == 9100 and s.poll_interval_seconds == 300.0
    assert s.state_dir == Path("state")


@pytest.mark.parametrize("url, expected", [
    ("http://devlake:8080", "http://devlake:8080/rest"),
    ("http://ui:4000/api", "http://ui:4000/api/rest"),
    ("http://ui:4000/api/rest/", "http://ui:4000/api/rest"),
])


def test_api_key_routes_requests_under_rest(url, expected):
    s = load_settings({"DEVLAKE_URL": url, "DEVLAKE_API_KEY": "k"})
    assert s.api_base_url == expected


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        load_settings({"TIMEZONE": "Mars/Olympus", "DAILY_RUN_TIME": "25:00", "MAX_RERUNS": "x",
                       "PROJECT_NAME_TEMPLATE": "{repo}", "SCOPE_CONFIG_ENTITIES": "CODE,NOPE",
                       "LOG_FORMAT": "xml", "BLUEPRINT_CRON": "every day", "METRICS_PORT": "70000",
                       "DEPLOYMENT_PATTERN": "(unclosed"})
    text = info.value.render()
    for name in ("DEVLAKE_URL", "TIMEZONE", "DAILY_RUN_TIME", "MAX_RERUNS", "PROJECT_NAME_TEMPLATE",
                 "SCOPE_CONFIG_ENTITIES", "LOG_FORMAT", "BLUEPRINT_CRON", "METRICS_PORT", "DEPLOYMENT_PATTERN"):
        assert name in text
    assert len(info.value.problems) == 10


def test_numbers_must_be_finite():
    # float() accepts "nan" and "inf": a retry "nan minutes" later, or an endless timeout, is no setting
    with pytest.raises(ConfigError) as info:
        load_settings({"DEVLAKE_URL": "http://d:8080", "RETRY_FAILED_AFTER_MINUTES": "nan",
                       "DEVLAKE_TIMEOUT_SECONDS": "inf", "DEVLAKE_RETRY_BACKOFF_SECONDS": "-inf",
                       "RETRY_FAILED_TIMES": "2"})
    assert len(info.value.problems) == 3
    for name in ("RETRY_FAILED_AFTER_MINUTES", "DEVLAKE_TIMEOUT_SECONDS", "DEVLAKE_RETRY_BACKOFF_SECONDS"):
        assert name in info.value.render()
    assert load_settings({"DEVLAKE_URL": "http://d", "RETRY_FAILED_AFTER_MINUTES": "0.5"}
                         ).retry_failed_after_minutes == 0.5


def test_api_key_is_not_in_repr_or_redacted_view():
    s = load_settings({"DEVLAKE_URL": "http://d:8080", "DEVLAKE_API_KEY": "supersecretkey",
                       "NOTIFICATION_SECRET": "othersecret-0123456789"})
    assert "supersecretkey" not in repr(s)
    assert "othersecret" not in repr(s)
    assert s.redacted()["notification_secret"] == "***"
    assert s.redacted()["api_key"] == "***"
    assert "supersecretkey" not in str(s.redacted())


def test_values_are_converted_to_real_types():
    s = load_settings({"DEVLAKE_URL": "https://d", "PLUGINS": "github, jira", "PROJECT_METRICS": "none",
                       "TRIGGER_NEW_BLUEPRINTS": "no", "DEVLAKE_TIMEOUT_SECONDS": "2.5",
                       "SCOPE_CONFIG_ENTITIES": "code,cicd", "BLUEPRINT_CRON": "0 2 * * *",
                       "LOG_FORMAT": "CONSOLE", "LOG_LEVEL": "debug"})
    assert s.plugins == ("github", "jira")
    assert s.project_metrics == ()
    assert s.trigger_new_blueprints is False
    assert s.timeout_seconds == 2.5
    assert s.scope_config_entities == ("CODE", "CICD")
    assert s.blueprint_cron == "0 2 * * *"
    assert (s.log_format, s.log_level) == ("console", "DEBUG")


def test_url_with_query_is_rejected():
    with pytest.raises(ConfigError, match="query"):
        load_settings({"DEVLAKE_URL": "http://d:8080/?x=1"})


def test_collection_settings_defaults():
    s = load_settings({"DEVLAKE_URL": "http://d:8080"})
    assert str(s.collection_window) == "22:00-06:00" and s.collection_window.minutes == 480
    assert str(s.devlake_timezone) == "UTC"
    assert s.max_pending_pipelines == 10
    assert s.redacted()["collection_window"] == "22:00-06:00"


@pytest.mark.parametrize("text, start, end, minutes", [
    ("22:00-04:00", 1320, 240, 360),      # crosses midnight
    ("01:30-02:00", 90, 120, 30),
    ("00:00-24:00", 0, 1440, 1440),       # the whole day
    ("18:00 - 24:00", 1080, 1440, 360),
    ("23:59-00:00", 1439, 0, 1),
])


def test_collection_window_parses(text, start, end, minutes):
    s = load_settings({"DEVLAKE_URL": "http://d:8080", "COLLECTION_WINDOW": text})
    window = s.collection_window
    assert (window.start, window.end, window.minutes) == (start, end, minutes)


def test_collection_settings_are_validated_together():
    with pytest.raises(ConfigError) as info:
        load_settings({"DEVLAKE_URL": "http://d:8080", "COLLECTION_WINDOW": "02:00-02:00",
                       "DEVLAKE_TIMEZONE": "Mars/Base", "MAX_PENDING_PIPELINES": "-1"})
    text = info.value.render()
    assert len(info.value.problems) == 3
    for name in ("COLLECTION_WINDOW", "DEVLAKE_TIMEZONE", "MAX_PENDING_PIPELINES"):
        assert name in text


@pytest.mark.parametrize("text", ["22-04", "24:00-01:00", "10:60-11:00", "10:00-24:01", "10:00", "00:00-00:00"])


def test_bad_collection_windows(text):
    with pytest.raises(ConfigError, match="COLLECTION_WINDOW"):
        load_settings({"DEVLAKE_URL": "http://d:8080", "COLLECTION_WINDOW": text})


def test_max_pending_zero_and_other_zone():
    s = load_settings({"DEVLAKE_URL": "http://d:8080", "MAX_PENDING_PIPELINES": "0",
                       "DEVLAKE_TIMEZONE": "America/New_York"})
    assert s.max_pending_pipelines == 0 and str(s.devlake_timezone) == "America/New_York"
def test_status_page_settings_defaults_and_conversion():
    s = load_settings({"DEVLAKE_URL": "http://d:8080"})
    assert (s.stuck_after_minutes, s.stale_after_hours, s.status_refresh_seconds, s.devlake_ui_url) == (
        360.0, 72.0, 60.0, None)
    s = load_settings({"DEVLAKE_URL": "http://d:8080", "STUCK_AFTER_MINUTES": "90", "STALE_AFTER_HOURS": "0.5",
                       "STATUS_REFRESH_SECONDS": "0", "DEVLAKE_UI_URL": "https://devlake.example/ui/"})
    assert (s.stuck_after_minutes, s.stale_after_hours, s.status_refresh_seconds, s.devlake_ui_url) == (
        90.0, 0.5, 0.0, "https://devlake.example/ui")


def test_bad_status_page_settings_are_all_reported():
    with pytest.raises(ConfigError) as info:
        load_settings({"DEVLAKE_URL": "http://d:8080", "STUCK_AFTER_MINUTES": "0", "STALE_AFTER_HOURS": "nan",
                       "STATUS_REFRESH_SECONDS": "2", "DEVLAKE_UI_URL": "javascript:alert(1)"})
    assert len(info.value.problems) == 4
    for name in ("STUCK_AFTER_MINUTES", "STALE_AFTER_HOURS", "STATUS_REFRESH_SECONDS", "DEVLAKE_UI_URL"):
        assert name in info.value.render()
def test_connection_checks_and_stale_age():
    s = load_settings({"DEVLAKE_URL": "http://d:8080"})
    assert (s.connection_check_interval_seconds, s.stale_after_hours) == (3600.0, 72.0)
    s = load_settings({"DEVLAKE_URL": "http://d:8080", "CONNECTION_CHECK_INTERVAL_SECONDS": "0",
                       "STALE_AFTER_HOURS": "36"})
    assert (s.connection_check_interval_seconds, s.stale_after_hours) == (0.0, 36.0)
    with pytest.raises(ConfigError) as err:
        load_settings({"DEVLAKE_URL": "http://d:8080", "CONNECTION_CHECK_INTERVAL_SECONDS": "-1",
                       "STALE_AFTER_HOURS": "soon"})
    assert "CONNECTION_CHECK_INTERVAL_SECONDS" in str(err.value) and "STALE_AFTER_HOURS" in str(err.value)


def test_url_passwords_never_reach_messages_and_are_secrets():
    with pytest.raises(ConfigError) as info:
        load_settings({"DEVLAKE_URL": "http://admin:ghp_URLPASS999@devlake:8080/?token=glpat-abc",
                       "DEVLAKE_UI_URL": "http://viewer:hunter2@devlake-ui:4000"})
    text = info.value.render()
    assert "ghp_URLPASS999" not in text and "glpat-abc" not in text and "hunter2" not in text
    assert "DEVLAKE_URL='http://admin:***@devlake:8080/?…'" in text and "must not contain a password" in text
    s = load_settings({"DEVLAKE_URL": "http://admin:s3cret@devlake-ui:4000/api",
                       "NOTIFICATION_SECRET": "n" * 16})
    assert set(s.secrets) == {"s3cret", "n" * 16}
    assert s.redacted()["devlake_url"] == "http://admin:***@devlake-ui:4000/api"
    s = load_settings({"DEVLAKE_URL": "http://devlake:8080", "DEVLAKE_API_KEY": "k", "NOTIFICATION_SECRET": "n" * 16})
    assert set(s.secrets) == {"k", "n" * 16}


def test_unknown_plugins_are_a_configuration_error():
    with pytest.raises(ConfigError, match="PLUGINS names githb: the daemons know only github, gitlab"):
        load_settings({"DEVLAKE_URL": "http://d:8080", "PLUGINS": "githb,gitlab"})


URL = {"DEVLAKE_URL": "http://d:8080"}

# Issue 21: each one past its documented bound killed a thread, hung or ate memory.
PAST_THE_BOUND = [
    ("POLL_INTERVAL_SECONDS", "1e10", "1–86400 seconds"),  # OverflowError in the poll loop
    ("POLL_INTERVAL_SECONDS", "86401", "1–86400 seconds"),
    ("CONNECTION_CHECK_INTERVAL_SECONDS", "1e308", "0–86400 seconds"),
    ("DEVLAKE_TIMEOUT_SECONDS", "1e308", "0.1–600 seconds"),
    ("DEVLAKE_TIMEOUT_SECONDS", "601", "0.1–600 seconds"),
    ("DEVLAKE_MAX_CONCURRENCY", "100000000", "an integer 1–64"),
    ("DEVLAKE_MAX_CONCURRENCY", "65", "an integer 1–64"),
    ("DEVLAKE_HTTP_RETRIES", "21", "an integer 0–20"),
    ("DEVLAKE_RETRY_BACKOFF_SECONDS", "61", "0–60 seconds"),
    ("RETRY_FAILED_AFTER_MINUTES", "1441", "0.1–1440 minutes"),
    ("RETRY_FAILED_TIMES", "101", "an integer 0–100"),
    ("MAX_RERUNS", "11", "an integer 0–10"),
    ("MAX_PENDING_PIPELINES", "1001", "an integer 0–1000"),
    ("RETIRE_MISSING_AFTER_DAYS", "366", "an integer 0–365 days, or off"),
    ("FAILURE_SERIES_RETENTION_DAYS", "366", "0–365 days"),
    ("MONITOR_LOOKBACK_HOURS", "8761", "0–8760 hours"),
    ("STUCK_AFTER_MINUTES", "10081", "more than 0, at most 10080 minutes"),
    ("STALE_AFTER_HOURS", "8761", "more than 0, at most 8760 hours"),
    ("STATUS_REFRESH_SECONDS", "3601", "0 (never) or 5–3600 seconds"),
    ("METRICS_PORT", "65536", "an integer 0–65535"),
]


@pytest.mark.parametrize("name, value, allowed", PAST_THE_BOUND, ids=lambda v: str(v)[:40])
def test_a_value_past_its_bound_is_a_configuration_error_naming_it(name, value, allowed):
    with pytest.raises(ConfigError) as info:
        load_settings({**URL, name: value})
    assert info.value.problems == [f"{name}={value!r} is not valid: expected {allowed}"]


@pytest.mark.parametrize("name, value", [
    ("POLL_INTERVAL_SECONDS", "86400"), ("CONNECTION_CHECK_INTERVAL_SECONDS", "86400"),
    ("DEVLAKE_TIMEOUT_SECONDS", "600"), ("DEVLAKE_MAX_CONCURRENCY", "64"), ("DEVLAKE_HTTP_RETRIES", "20"),
    ("DEVLAKE_RETRY_BACKOFF_SECONDS", "60"), ("RETRY_FAILED_AFTER_MINUTES", "1440"), ("RETRY_FAILED_TIMES", "100"),
    ("MAX_RERUNS", "10"), ("MAX_PENDING_PIPELINES", "1000"), ("RETIRE_MISSING_AFTER_DAYS", "365"),
    ("FAILURE_SERIES_RETENTION_DAYS", "365"), ("MONITOR_LOOKBACK_HOURS", "8760"), ("STUCK_AFTER_MINUTES", "10080"),
    ("STALE_AFTER_HOURS", "8760"), ("STATUS_REFRESH_SECONDS", "3600"), ("METRICS_PORT", "65535"),
])
def test_the_bound_itself_is_allowed(name, value):
    load_settings({**URL, name: value})


def test_every_bad_value_is_in_one_message_and_main_exits_2_without_traceback(capsys):
    import blueprint_monitor
    import manage_projects

    env = {**URL, **{name: value for name, value, _ in PAST_THE_BOUND}}
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    names = {name for name, _, _ in PAST_THE_BOUND}
    assert len(info.value.problems) == len(names)
    for main in (manage_projects.main, blueprint_monitor.main):
        assert main([], env) == 2
        err = capsys.readouterr().err
        assert err.startswith("invalid configuration:") and "Traceback" not in err
        assert all(name in err for name in names)


def test_each_setting_is_declared_once_and_read_by_a_daemon():
    from config import Settings, setting_names
    from utils.env_values import declared

    names = setting_names()
    assert len(names) == len(set(names)) == len(Settings.__dataclass_fields__)
    for field_name, var in declared(Settings):
        field = Settings.__dataclass_fields__[field_name]
        assert var.used_by in ("both", "automation", "monitor")
        assert var.required or field.default is var.default  # the dataclass' default is the loader's


def test_notification_secret_needs_16_characters_and_the_message_never_shows_it():
    # NOTIFICATION_SECRET=e made the redactor mask every "e" of every log line (issue 21)
    with pytest.raises(ConfigError) as info:
        load_settings({**URL, "NOTIFICATION_SECRET": "short-secret"})
    assert info.value.problems == [
        "NOTIFICATION_SECRET is too short (12 characters): it needs at least 16 (e.g. openssl rand -hex 32)"]
    assert "short-secret" not in info.value.render()
    assert load_settings({**URL, "NOTIFICATION_SECRET": "x" * 16}).notification_secret == "x" * 16


@pytest.mark.parametrize("url", ["http://admin:pw@devlake-ui:4000/api", "http://admin@devlake-ui:4000/api"])
def test_api_key_with_user_info_in_the_url_is_a_configuration_error(url):
    # requests would send the user info as basic auth instead of the Bearer key: every call 401
    with pytest.raises(ConfigError) as info:
        load_settings({"DEVLAKE_URL": url, "DEVLAKE_API_KEY": "key-value"})
    (problem,) = info.value.problems
    assert problem.startswith("DEVLAKE_API_KEY and user info in DEVLAKE_URL (user:password@) cannot go together")
    assert "pw" not in problem and "key-value" not in problem
    assert load_settings({"DEVLAKE_URL": url}).api_key is None  # each alone is fine
    assert load_settings({"DEVLAKE_URL": "http://devlake:8080", "DEVLAKE_API_KEY": "k"}).api_key == "k"


@pytest.mark.parametrize("url, reason", [
    ("http://[::1", "Invalid IPv6 URL"),  # was a ValueError traceback
    ("http://devlake:99999", "out of range"),
    ("http://devlake:port", "Port could not be cast"),
    ("http://:8080", "expected an http:// or https:// URL"),
])
def test_unparsable_urls_are_configuration_errors(url, reason):
    with pytest.raises(ConfigError) as info:
        load_settings({"DEVLAKE_URL": url, "DEVLAKE_UI_URL": url})
    assert len(info.value.problems) == 2
    assert all(reason in p for p in info.value.problems), info.value.problems


@pytest.mark.parametrize("template", [
    "{name:999999999}",      # a width bomb: a gigabyte per project name
    "{plugin}/{name:.9999}",
    "{name:{plugin}}",       # a nested field
    "{name:d}",              # fails on every scope at run time
    "{connection_id:x<101}",
])
def test_project_name_templates_that_cannot_make_a_name_are_refused(template):
    with pytest.raises(ConfigError, match="PROJECT_NAME_TEMPLATE"):
        load_settings({**URL, "PROJECT_NAME_TEMPLATE": template})


@pytest.mark.parametrize("template", ["{plugin}/{name}", "{name:>20}", "{plugin}-{connection_id:03d}/{name!s}",
                                      "{name:.100}"])
def test_project_name_templates_with_modest_formats_are_accepted(template):
    assert load_settings({**URL, "PROJECT_NAME_TEMPLATE": template}).project_name_template == template


@pytest.mark.parametrize("url", [None, "ftp://d"])
def test_a_missing_or_bad_url_with_an_api_key_is_one_problem_not_a_crash(url):
    env = {"DEVLAKE_API_KEY": "k"} | ({"DEVLAKE_URL": url} if url else {})
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    (problem,) = info.value.problems
    assert problem.startswith("DEVLAKE_URL")
