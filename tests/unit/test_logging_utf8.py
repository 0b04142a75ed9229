"""JSON log lines keep non-ASCII project names readable (issue 10, item 7)."""
import io
import json

import structlog

from utils.logging import configure_logging


def test_json_lines_keep_utf8_and_still_redact():
    stream = io.StringIO()
    configure_logging("INFO", "json", secrets=["s3cret"], stream=stream)
    try:
        structlog.get_logger("t").info("pipeline_failed", project="github/dự-án-thử", other="数据采集 Проект",
                                       message="token s3cret")
    finally:
        structlog.reset_defaults()
    line = stream.getvalue().strip()
    assert "dự-án-thử" in line and "数据采集 Проект" in line and "\\u" not in line
    assert json.loads(line)["project"] == "github/dự-án-thử"
    assert "s3cret" not in line


def test_json_lines_escape_line_separators_and_c1_controls():
    """Issue 21: U+2028/U+2029, DEL and C1 controls in a value never reach the log raw."""
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    hostile = "a\u2028b\u2029c\x85d\x9be\x7ff\x00g\nh"
    try:
        structlog.get_logger("t").info("project_seen", project=hostile, other="dự-án")
    finally:
        structlog.reset_defaults()
    line = stream.getvalue()
    assert line.count("\n") == 1 and line.endswith("\n")
    raw = set(line[:-1])
    assert not raw & {"\u2028", "\u2029", "\x85", "\x9b", "\x7f", "\x00", "\n"}
    assert "\\u2028" in line and "\\u0085" in line and "dự-án" in line
    assert json.loads(line)["project"] == hostile


def test_authorization_values_of_any_scheme_are_masked_in_log_values():
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    echoed = ('proxy said: Authorization: Basic dXNlcjpzM2NyZXQ= / {"authorization":"Token tok-123"} / '
              'map[Authorization:[Bearer bear.er.1]] / authorization: MyScheme k3y-999')
    try:
        structlog.get_logger("t").error("item_failed", error=echoed)
    finally:
        structlog.reset_defaults()
    line = stream.getvalue()
    for secret in ("dXNlcjpzM2NyZXQ=", "tok-123", "bear.er.1", "k3y-999", "MyScheme"):
        assert secret not in line
    assert json.loads(line)["error"].startswith("proxy said: Authorization: ***")
