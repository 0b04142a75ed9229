"""The first cron run of a new managed blueprint (modules/monitoring/first_run.py), no clock needed."""
from datetime import UTC, datetime

import pytest

from modules.monitoring.first_run import first_run, next_run
from tests.unit.test_cron import ACCEPTED, REFUSED

T = datetime(2026, 12, 3, 10, 15, 30, tzinfo=UTC)  # a Thursday


@pytest.mark.parametrize(("cron", "expected"), [
    ("0 0 * * *", datetime(2026, 12, 4, 0, 0, tzinfo=UTC)),      # DevLake's default: tomorrow 00:00 UTC
    ("30 11 * * *", datetime(2026, 12, 3, 11, 30, tzinfo=UTC)),  # later today (a spread slot)
    ("15 10 * * *", datetime(2026, 12, 4, 10, 15, tzinfo=UTC)),  # this minute began already: tomorrow
    ("16 10 * * *", datetime(2026, 12, 3, 10, 16, tzinfo=UTC)),
    ("*/20 * * * *", datetime(2026, 12, 3, 10, 20, tzinfo=UTC)),
    ("0 0 * * 1", datetime(2026, 12, 7, 0, 0, tzinfo=UTC)),      # weekly: next Monday
    ("0 0 * * MON", datetime(2026, 12, 7, 0, 0, tzinfo=UTC)),
    ("0 0 1 * *", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
    ("0 0 13 * 5", datetime(2026, 12, 4, 0, 0, tzinfo=UTC)),     # both day fields set: either matches
    ("0 0 */2 * 5", datetime(2026, 12, 4, 0, 0, tzinfo=UTC)),    # a stepped `*` is no star: either matches
    ("0 0 4,* * 1", datetime(2026, 12, 7, 0, 0, tzinfo=UTC)),    # a `*` in a list is: both must match
    ("@daily", datetime(2026, 12, 4, 0, 0, tzinfo=UTC)),
    ("0 0 29 2 *", datetime(2028, 2, 29, 0, 0, tzinfo=UTC)),
    ("1-10/3 * * * *", datetime(2026, 12, 3, 11, 1, tzinfo=UTC)),  # 1, 4, 7, 10 past each hour
    ("0 0 * * sat-Sat", datetime(2026, 12, 5, 0, 0, tzinfo=UTC)),   # names in ranges, in any case
    ("0 0 * jan-mar/2 *", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
    ("*-5 0 * * *", datetime(2026, 12, 4, 0, 0, tzinfo=UTC)),        # robfig reads `*` and ignores "-5"
    ("0,,30 11 * * *", datetime(2026, 12, 3, 11, 0, tzinfo=UTC)),    # Go's FieldsFunc skips the empty item
    ("CRON_TZ=Asia/Ho_Chi_Minh 0 18 * * *", datetime(2026, 12, 3, 11, 0, tzinfo=UTC)),
])
def test_next_run_follows_robfig_cron_in_utc(cron, expected):
    assert next_run(cron, T) == expected


@pytest.mark.parametrize("cron", ["manual", "", "@every 1h", "61 0 * * *", "0 0 * *", "x y z w v",
                                  "0 0 31 2 *", "CRON_TZ=Nowhere/City 0 0 * * *",
                                  "0 0 * * 7", "0 0 * * 5-7", "1_0 * * * *"])  # DevLake refuses these
def test_what_is_not_a_schedule_is_none(cron):
    assert next_run(cron, T) is None


@pytest.mark.parametrize("cron", [c for c in ACCEPTED if not c.startswith("@every")])
def test_every_cron_blueprint_cron_accepts_has_a_next_run(cron):
    assert next_run(cron, T) is not None


@pytest.mark.parametrize("cron", [c for c in REFUSED if not c.startswith(("CRON_TZ=", "TZ="))])
def test_no_cron_blueprint_cron_refuses_has_a_next_run(cron):  # a zone prefix is only our own rule
    assert next_run(cron, T) is None


def blueprint(**fields):
    base = {"enable": True, "isManual": False, "cronConfig": "30 11 * * *", "createdAt": "2026-12-03T17:15:30+07:00",
            "labels": ["managed-by/devlake-automation"]}
    return base | fields


def test_first_run_of_a_managed_enabled_blueprint():
    assert first_run(blueprint()) == datetime(2026, 12, 3, 11, 30, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("fields", [{"enable": False}, {"isManual": True}, {"labels": []}, {"labels": None},
                                    {"createdAt": None}, {"createdAt": "yesterday"}, {"cronConfig": None},
                                    {"cronConfig": "manual"}, {"cronConfig": "0 0 * * 7"}])
def test_blueprints_devlake_does_not_start_by_itself_have_none(fields):
    assert first_run(blueprint(**fields)) is None
    assert first_run(None) is None
