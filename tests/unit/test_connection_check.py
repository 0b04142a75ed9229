"""Reading DevLake's connection test answers (`docs/devlake-api.md` §9.6)."""
from __future__ import annotations

from modules.api import DevLakeError, DevLakeUnavailable
from modules.monitoring.connections import failure_in_answer, verdict

OK = {"code": 0, "success": True, "message": "success", "causes": None, "data": None}


def test_a_2xx_without_success_false_is_up():
    assert failure_in_answer(OK) is None
    assert failure_in_answer({}) is None  # a bare object says nothing more


def test_githubs_200_with_a_failing_token_is_down_and_names_the_token_not_its_value():
    body = {"success": False, "message": "StatusUnauthorized error when testing connection",
            "causes": ["x"], "tokens": [
                {"token": "ghp_****", "success": True, "message": "success", "login": "octocat"},
                {"token": "ghp_****", "success": False, "message": "StatusUnauthorized error when testing connection"}]}
    assert failure_in_answer(body) == "token 2 of 2: StatusUnauthorized error when testing connection"


def test_success_false_without_tokens_uses_the_message():
    assert failure_in_answer({"success": False, "message": "Bad credentials"}) == "Bad credentials"
    assert failure_in_answer({"success": False}) == "the test failed without a message"


def test_error_statuses():
    assert verdict(DevLakeError("Bad credentials", status=400)) is False
    assert verdict(DevLakeError("unexpected status code: 401", status=401)) is False  # circleci's verdict
    assert verdict(DevLakeError("api key is invalid", status=403)) is None            # our key, not theirs
    assert verdict(DevLakeError("", status=500)) is None
    assert verdict(DevLakeUnavailable("refused")) is None
