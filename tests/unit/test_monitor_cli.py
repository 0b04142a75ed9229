"""blueprint_monitor.py's command line: --help, configuration errors, --once when DevLake is down."""
import re

import pytest
import requests
import structlog

import blueprint_monitor

SECRET = "sekrit-api-key-value"


@pytest.fixture(autouse=True)
def reset_structlog():
    yield
    structlog.reset_defaults()  # main() points structlog at this test's captured stderr


def test_help_documents_environment_and_endpoints(capsys):
    with pytest.raises(SystemExit) as exit_info:
        blueprint_monitor.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for word in ("--once", "DEVLAKE_URL", "METRICS_PORT", "POLL_INTERVAL_SECONDS", "FAILURE_SERIES_RETENTION_DAYS",
                 "MONITOR_LOOKBACK_HOURS", "STATE_DIR", "/metrics", "/healthz", "node_exporter"):
        assert word in out


def test_missing_url_and_bad_values_exit_2_in_one_message(monkeypatch, capsys):
    monkeypatch.setenv("DEVLAKE_API_KEY", SECRET)
    monkeypatch.setenv("METRICS_PORT", "99999")
    monkeypatch.setenv("POLL_INTERVAL_SECONDS", "soon")
    assert blueprint_monitor.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "DEVLAKE_URL is required" in captured.err
    assert "METRICS_PORT" in captured.err and "POLL_INTERVAL_SECONDS" in captured.err
    assert "Traceback" not in captured.err and SECRET not in captured.err


def test_once_with_devlake_down_says_so_in_one_line_and_polls_nothing(monkeypatch, capsys, tmp_path,
                                                                       requests_mock):
    monkeypatch.setenv("DEVLAKE_URL", "http://devlake.test:8080")
    monkeypatch.setenv("STATE_DIR", str(tmp_path))
    requests_mock.get(re.compile(r"http://devlake\.test:8080/.*"), exc=requests.ConnectionError("reset"))
    assert blueprint_monitor.main(["--once"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no exposition of zeros
    assert "DEVLAKE_URL=http://devlake.test:8080: the connection to devlake.test:8080 failed" in captured.err
    assert [r.path for r in requests_mock.request_history] == ["/version"]  # nothing polled after it
    assert "ConnectionError" not in captured.err


def test_once_whose_poll_fails_exits_1_prints_metrics_and_skips_the_connection_checks(monkeypatch, capsys,
                                                                                       tmp_path, requests_mock):
    monkeypatch.setenv("DEVLAKE_URL", "http://devlake.test:8080")
    monkeypatch.setenv("DEVLAKE_API_KEY", SECRET)
    monkeypatch.setenv("STATE_DIR", str(tmp_path))
    monkeypatch.setenv("DEVLAKE_HTTP_RETRIES", "0")
    requests_mock.get(re.compile(r"http://devlake\.test:8080/.*"), exc=requests.ConnectionError("refused"))
    requests_mock.get("http://devlake.test:8080/rest/version", json={"version": "v1.0.2"})  # gone right after
    assert blueprint_monitor.main(["--once"]) == 1
    captured = capsys.readouterr()
    assert "devlake_up 0.0" in captured.out
    assert not any(r.path.endswith("/test") or "/connections" in r.path for r in requests_mock.request_history)
    assert 'devlake_monitor_poll_errors_total{reason="unreachable"} 1.0' in captured.out
    assert '"event": "poll_failed"' in captured.err and '"reason": "unreachable"' in captured.err
    assert SECRET not in captured.out + captured.err
    assert requests_mock.last_request.headers["Authorization"] == f"Bearer {SECRET}"
    assert requests_mock.last_request.path.startswith("/rest/")


def test_once_against_devlake_with_auth_on_and_no_key_exits_2_saying_what_to_do(monkeypatch, capsys, tmp_path,
                                                                                 requests_mock):
    monkeypatch.setenv("DEVLAKE_URL", "http://devlake.test:8080")
    monkeypatch.setenv("STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CONNECTION_CHECK_INTERVAL_SECONDS", "0")
    requests_mock.get(re.compile(r"http://devlake\.test:8080/.*"), status_code=401,
                      json={"success": False, "message": "Unauthorized"})
    assert blueprint_monitor.main(["--once"]) == 2
    captured = capsys.readouterr()
    assert "devlake_up 0.0" in captured.out
    assert "create an API key in DevLake's UI" in captured.err and "DEVLAKE_API_KEY" in captured.err
    assert '"hint": "DevLake requires authentication' in captured.err
    assert "Traceback" not in captured.err
