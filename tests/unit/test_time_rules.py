from datetime import UTC, datetime, timedelta

import pytest
import pytz

from utils.blueprints import previous_saturday, time_after_change
from utils.datetime import format_devlake_time, parse_devlake_time

VN = pytz.timezone("Asia/Ho_Chi_Minh")


@pytest.mark.parametrize("local_day, expected", [
    ("2026-11-22", "2026-11-21"),  # Sunday -> yesterday
    ("2026-11-23", "2026-11-21"),  # Monday
    ("2026-11-27", "2026-11-21"),  # Friday
    ("2026-11-28", "2026-11-21"),  # Saturday -> strictly before: 7 days earlier
    ("2026-11-29", "2026-11-28"),  # next Sunday moves on
    ("2027-01-01", "2026-12-26"),  # across a year end
])
def test_previous_saturday_uses_the_local_date(local_day, expected):
    y, m, d = map(int, local_day.split("-"))
    now = VN.localize(datetime(y, m, d, 18, 0))
    assert previous_saturday(now, VN).strftime("%Y-%m-%d %H:%M:%S%z") == expected + " 00:00:00+0700"


def test_previous_saturday_from_a_utc_clock_near_midnight():
    # 2026-11-28 17:30 UTC is already Sunday 00:30 in Vietnam: the target is that Saturday.
    now = datetime(2026, 11, 28, 17, 30, tzinfo=UTC)
    assert format_devlake_time(previous_saturday(now, VN)) == "2026-11-28T00:00:00+07:00"


def test_format_is_what_every_devlake_endpoint_accepts():
    moment = VN.localize(datetime(2026, 11, 21, 0, 0, 0, 123456))
    assert format_devlake_time(moment) == "2026-11-21T00:00:00+07:00"
    with pytest.raises(ValueError):
        format_devlake_time(datetime(2026, 1, 1))


@pytest.mark.parametrize("text", [
    "2026-11-20T17:00:00Z", "2026-11-21T00:00:00+07:00", "2026-11-20T17:00:00.000000000Z",
    "2026-11-20 17:00:00", "2026-11-20T17:00:00.5-00:00",
])
def test_parse_compares_instants_not_strings(text):
    expected = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
    assert abs(parse_devlake_time(text) - expected) <= timedelta(seconds=1)


def test_parse_rejects_garbage():
    assert parse_devlake_time(None) is None
    with pytest.raises(ValueError):
        parse_devlake_time("yesterday")
    with pytest.raises(ValueError):
        parse_devlake_time(12345)


def test_time_after_change_never_moves_earlier():
    target = VN.localize(datetime(2026, 11, 21))
    assert time_after_change(None, target) == "set"
    assert time_after_change(target.astimezone(UTC), target) == "unchanged"
    assert time_after_change(target - timedelta(days=7), target) == "set"
    assert time_after_change(target + timedelta(days=1), target) == "keep_later"
