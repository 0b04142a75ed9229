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


def test_api_key_is_not_in_repr_or_redacted_view():
    s = load_settings({"DEVLAKE_URL": "http://d:8080", "DEVLAKE_API_KEY": "supersecretkey",
                       "NOTIFICATION_SECRET": "othersecret"})
    assert "supersecretkey" not in repr(s)
    assert "othersecret" not in repr(s)
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
