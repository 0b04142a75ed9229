"""modules.monitoring.notifications without a network: signature, parsing, replay memory, the answers."""
from __future__ import annotations

import hashlib

import pytest

from modules.monitoring import notifications
from modules.monitoring.notifications import (
    MAX_BODY_BYTES,
    NotificationReceiver,
    RecentNouces,
    parse_notification,
    signature,
    signature_ok,
)
from sandbox.notifier import sign as sandbox_sign
from tests.clock import Clock
from tests.unit.test_monitor_poll import make_monitor

BODY = (b'{"ProjectName":"github/a","PipelineID":7,"CreatedAt":"2025-08-08T06:50:00Z",'
        b'"UpdatedAt":"2025-08-08T07:00:00.123Z","BeganAt":"2025-08-08T06:50:01Z",'
        b'"FinishedAt":"2025-08-08T07:00:00.123Z","Status":"TASK_FAILED"}')
SECRET, NOUCE = "s3cret", "42-AbCdEfGhIjKlMnOp"
# printf '%s' "$BODY$SECRET$NOUCE" | sha256sum
SIGN = "a7152930bf2314547a0d54a509e36466e14e273c26eb9f6c748ad42d4c9472d0"


# -- signature --------------------------------------------------------------------------------------

def test_signature_is_devlakes_sha256_of_body_secret_nouce():
    assert signature(BODY, SECRET, NOUCE) == SIGN
    assert sandbox_sign(BODY, SECRET, NOUCE) == SIGN  # the fake's sender, written separately


def test_signature_ok_accepts_only_the_exact_body_secret_and_nouce():
    assert signature_ok(BODY, SECRET, NOUCE, SIGN)
    assert signature_ok(BODY, SECRET, NOUCE, SIGN.upper())
    assert not signature_ok(BODY.replace(b"TASK_FAILED", b"TASK_PARTIAL"), SECRET, NOUCE, SIGN)  # tampered
    assert not signature_ok(BODY + b" ", SECRET, NOUCE, SIGN)
    assert not signature_ok(BODY, "other", NOUCE, SIGN)
    assert not signature_ok(BODY, SECRET, "43-AbCdEfGhIjKlMnOp", SIGN)
    for nouce, sign in ((None, SIGN), (NOUCE, None), ("", SIGN), (NOUCE, ""), (NOUCE, SIGN[:-1])):
        assert not signature_ok(BODY, SECRET, nouce, sign)


def test_a_nouce_not_shaped_like_devlakes_is_refused_even_when_signed():
    """sha256(body + secret + nouce) allows length extension on the nouce; DevLake's shape does not."""
    for nouce in ("42-AbCdEfGhIjKlMnOp\x80\x00\x00", "x", "42-short", "42-AbCdEfGhIjKlMnOp-more"):
        assert not signature_ok(BODY, SECRET, nouce, signature(BODY, SECRET, nouce))


def test_compared_in_constant_time(monkeypatch):
    calls = []
    real = notifications.hmac.compare_digest
    monkeypatch.setattr(notifications.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    assert signature_ok(BODY, SECRET, NOUCE, SIGN)
    assert calls == [(SIGN.encode(), SIGN.encode())]


# -- parsing ----------------------------------------------------------------------------------------

def test_parse_keeps_only_what_the_worker_needs():
    note = parse_notification(BODY, NOUCE)
    assert (note.pipeline_id, note.status, note.project_name, note.notification_id) == (
        7, "TASK_FAILED", "github/a", "42")
    adhoc = parse_notification(b'{"ProjectName":"","PipelineID":3,"Status":"TASK_CREATED"}', NOUCE)
    assert adhoc.project_name == ""


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[1]", b"\xff\xfe", b'{"Status":"TASK_FAILED"}', b'{"PipelineID":"7","Status":"x"}',
    b'{"PipelineID":true,"Status":"x"}', b'{"PipelineID":0,"Status":"x"}', b'{"PipelineID":7}',
    b'{"PipelineID":7,"Status":"x","ProjectName":5}', b"[" * 60_000,
])
def test_parse_refuses_malformed_bodies(body):
    with pytest.raises(ValueError):
        parse_notification(body, NOUCE)


def test_recent_nouces_is_a_bounded_lru():
    recent = RecentNouces(size=2)
    assert recent.first_time("1-a") and recent.first_time("2-b")
    assert not recent.first_time("1-a")  # and "1-a" becomes the most recent
    assert recent.first_time("3-c")  # evicts "2-b"
    assert not recent.first_time("1-a") and recent.first_time("2-b")


# -- the answers (HTTP-free) ------------------------------------------------------------------------

@pytest.fixture
def receiver(tmp_path):
    # a real monitor, never polled: the answers touch only its counters
    return NotificationReceiver(make_monitor(tmp_path, Clock()), client=None, secret=SECRET,
                                queue_size=1)  # worker not started


def post(receiver, body=BODY, nouce=NOUCE, sign=None, length="auto"):
    query = f"nouce={nouce}&sign={sign or signature(body, SECRET, nouce)}"
    length = str(len(body)) if length == "auto" else length
    return receiver.handle(length, lambda n: body[:n], query, "127.0.0.1")


def outcome(receiver, name):
    return receiver.monitor.registry.get_sample_value("devlake_monitor_notifications_total", {"outcome": name})


def test_answers_and_outcomes(receiver):
    assert post(receiver).status == 200 and outcome(receiver, "accepted") == 1
    assert post(receiver).status == 200 and outcome(receiver, "replay") == 1  # same nouce: ignored
    assert post(receiver, sign="0" * 64).status == 401
    assert receiver.handle(str(len(BODY)), lambda n: BODY, "", "peer").status == 401  # no nouce/sign
    assert outcome(receiver, "bad_signature") == 2
    assert post(receiver, body=b"{", nouce="5-AbCdEfGhIjKlMnOp").status == 400
    assert post(receiver, length=None).status == 411
    assert post(receiver, length="-1").status == 400 and post(receiver, length="x").status == 400
    short = receiver.handle(str(len(BODY) + 5), lambda n: BODY, f"nouce={NOUCE}&sign={SIGN}", "peer")
    assert (short.status, short.close) == (400, True)
    assert outcome(receiver, "malformed") == 5
    # the queue holds one: the next accepted notification is refused with 503 (the poller catches up)
    assert post(receiver, nouce="6-AbCdEfGhIjKlMnOp").status == 503 and outcome(receiver, "dropped") == 1


def test_every_answer_shows_in_the_next_exposition(receiver):
    """The receiver never invalidates the monitor's cached exposition: counting an answer does."""
    monitor = receiver.monitor
    assert b'devlake_monitor_notifications_total{outcome="bad_signature"} 0.0' in monitor.exposition()
    post(receiver, sign="0" * 64)
    assert b'devlake_monitor_notifications_total{outcome="bad_signature"} 1.0' in monitor.exposition()
    post(receiver)
    assert b'devlake_monitor_notifications_total{outcome="accepted"} 1.0' in monitor.exposition()


def test_oversized_body_is_refused_unread(receiver):
    def never(_n):
        raise AssertionError("the body must not be read")
    answer = receiver.handle(str(MAX_BODY_BYTES + 1), never, "nouce=1-AbCdEfGhIjKlMnOp&sign=00", "peer")
    assert (answer.status, answer.close) == (413, True)
    assert outcome(receiver, "too_large") == 1
    assert post(receiver, body=b" " * (MAX_BODY_BYTES - len(BODY)) + BODY).status == 200  # the cap is inclusive


def test_replay_is_remembered_only_once_authentic(receiver):
    """A forged request must not poison the replay memory and block the real one."""
    assert post(receiver, sign="0" * 64).status == 401
    assert post(receiver).status == 200 and outcome(receiver, "accepted") == 1


def test_hashlib_is_what_devlake_uses():
    assert signature(b"a", "b", "c") == hashlib.sha256(b"abc").hexdigest()
