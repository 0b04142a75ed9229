"""BLUEPRINT_CRON is what DevLake's cron parser (robfig/cron v3 ParseStandard) accepts, no more, no less."""
import pytest

from config import ConfigError, load_settings
from utils.cron import FIELDS, CronError, check_cron, field_values, go_duration_ns

ACCEPTED = [
    "0 2 * * *", "*/15 * * * *", "0,30 8-18/2 * * 1-5", "5/10 * * * *", "? * * * ?",
    "0 0 1 jan mon", "0 0 * JAN-MAR Mon-Fri", "0 0 * * sun,sat", "59 23 31 12 6", "00 01 * * *",
    "+5 * * * *", "1,,2 * * * *",  # Go's Atoi takes a sign; FieldsFunc skips the empty list item
    "*-5 * * * *",  # robfig takes "*" and ignores what follows the hyphen
    "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly",
    "@every 1h30m", "@every 1.5h", "@every 90s", "@every 500ms", "@every 0",
]
REFUSED = [
    "61 25 * * *", "60 * * * *", "0 24 * * *", "0 0 0 * *", "0 0 32 * *", "0 0 * 0 *", "0 0 * 13 *",
    "0 0 * * 7",  # Sunday is 0 only
    "5-1 * * * *", "*/0 * * * *", "1-2-3 * * * *", "*/5/2 * * * *", "-1 * * * *", "x * * * *",
    "0 0 * foo *", "0 0 * * sunday", "0 0 * mon *", "1_0 * * * *", "٣ * * * *", "0 0 * * * *", "0 0 * *",
    "@every", "@every 1", "@every 1x", "@every h", "@every 1h 30m", "@every 3000000h", "@fortnightly",
    "@Daily", "CRON_TZ=UTC 0 0 * * *", "TZ=UTC 0 0 * * *",
]


@pytest.mark.parametrize("spec", ACCEPTED)
def test_what_devlake_accepts_is_accepted(spec):
    check_cron(spec)
    assert load_settings({"DEVLAKE_URL": "http://d", "BLUEPRINT_CRON": spec}).blueprint_cron == spec


@pytest.mark.parametrize("spec", REFUSED)
def test_what_devlake_refuses_is_a_configuration_error(spec):
    with pytest.raises(CronError):
        check_cron(spec)
    with pytest.raises(ConfigError) as info:
        load_settings({"DEVLAKE_URL": "http://d", "BLUEPRINT_CRON": spec})
    (problem,) = info.value.problems
    assert problem.startswith(f"BLUEPRINT_CRON={spec!r} is not valid: ")


def test_the_message_says_which_field_and_why():
    with pytest.raises(ConfigError) as info:
        load_settings({"DEVLAKE_URL": "http://d", "BLUEPRINT_CRON": "61 25 * * *"})
    assert info.value.problems == ["BLUEPRINT_CRON='61 25 * * *' is not valid: minute field '61': 61 is above "
                                   "the maximum 59 (expected a 5-field cron, an @-descriptor such as @daily, "
                                   "or manual)"]


def test_manual_stays_manual():
    assert load_settings({"DEVLAKE_URL": "http://d", "BLUEPRINT_CRON": "manual"}).blueprint_cron == "manual"


@pytest.mark.parametrize("text, ns", [("1h30m", 5400 * 10**9), ("1.5h", 5400 * 10**9), ("-2s", -2 * 10**9),
                                      ("1.s", 10**9), (".5s", 5 * 10**8), ("1us", 1000), ("1µs", 1000), ("0", 0)])
def test_go_durations(text, ns):
    assert go_duration_ns(text) == ns


@pytest.mark.parametrize(("text", "field", "values"), [
    ("1-10/3", 0, {1, 4, 7, 10}), ("50/5", 0, {50, 55}), ("*/6", 1, {0, 6, 12, 18}), ("?", 1, set(range(24))),
    ("1,15,,31", 2, {1, 15, 31}), ("JAN-mar/2", 3, {1, 3}), ("sun,6", 4, {0, 6}), ("mon-fri", 4, {1, 2, 3, 4, 5}),
])
def test_field_values_expands_what_it_accepts(text, field, values):
    assert field_values(text, FIELDS[field]).values == values


@pytest.mark.parametrize(("text", "star"), [("*", True), ("?", True), ("*/1", True), ("1,*", True), ("*-5", True),
                                             ("*/2", False), ("1-31", False), ("1/1", False)])
def test_field_values_marks_robfigs_star_bit(text, star):
    assert field_values(text, FIELDS[2]).star is star


def test_field_values_refuses_sunday_as_seven():
    with pytest.raises(CronError, match="day of week field '7': 7 is above the maximum 6"):
        field_values("7", FIELDS[4])
