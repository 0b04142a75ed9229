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
