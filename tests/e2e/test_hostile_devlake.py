"""A DevLake that lies (issue 21): endless lists, oversized pages, repeats, wrong types.

Every read stays bounded, ends in one `devlake_answer_malformed` line, and the automation
writes nothing after a malformed project or blueprint list.
"""
from __future__ import annotations

import itertools
import json
import time
from datetime import UTC

import pytest
from structlog.testing import capture_logs

from modules import answers
from modules.api import DevLakeError, DevLakeMalformed
from modules.client import build_client
from modules.runner import run_once
from modules.scopes import Connection, walk_remote_scopes
from sandbox.fake_devlake import FakeDevLake
from tests.e2e.test_automation_e2e import NOW, settings_for
from tests.hostile import HostileServer


def client_for(url: str):
    return build_client(settings_for_url(url))


def settings_for_url(url: str):
    from config import load_settings
    return load_settings({"DEVLAKE_URL": url, "DEVLAKE_HTTP_RETRIES": "0", "DEVLAKE_TIMEOUT_SECONDS": "5",
                          "DEVLAKE_RETRY_BACKOFF_SECONDS": "0"})


def as_json(body) -> tuple[int, dict, bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


def malformed_lines(logs) -> list[dict]:
    return [e for e in logs if e["event"] == "devlake_answer_malformed"]


def endless_projects():
    """`count` that lies and full pages of fresh names, forever."""
    fresh = itertools.count()

    def answer(_method, _path, query):
        size = int(query["pageSize"])
        return as_json({"count": 10**9, "projects": [{"name": f"p{next(fresh)}"} for _ in range(size)]})
    return answer


@pytest.fixture
def small_caps(monkeypatch):
    """Caps a tenth of the real ones keep the suite fast; the real ones took 16 s and 5 s here
    at a peak RSS of 72 MB for the whole pytest process (docs/pending-hardening21.md)."""
    monkeypatch.setattr(answers, "MAX_LIST_ITEMS", 20_000)
    monkeypatch.setattr(answers, "MAX_REMOTE_PAGES", 100)


def test_an_endless_project_list_stops_at_the_item_cap(small_caps):
    with HostileServer(endless_projects()) as server, capture_logs() as logs:
        with pytest.raises(DevLakeMalformed, match=f"more than {answers.MAX_LIST_ITEMS} items"):
            for _ in client_for(server.url).iter_projects():
                pass
    assert server.calls == answers.MAX_LIST_ITEMS // 100 + 1
    [line] = malformed_lines(logs)
    assert line["route"] == "/projects" and "items" in line["problem"]


def test_a_count_past_the_cap_is_refused_before_paging_on():
    def answer(_method, _path, query):
        size = int(query["pageSize"])
        return as_json({"count": 10**9, "blueprints": [{"id": i + 1} for i in range(size)]})
    with HostileServer(answer) as server, capture_logs() as logs:
        with pytest.raises(DevLakeMalformed, match="count 1000000000"):
            list(client_for(server.url).iter_blueprints(workers=2))
    assert server.calls == 1 and len(malformed_lines(logs)) == 1


def test_a_page_larger_than_asked_for_is_malformed():
    def answer(_method, _path, query):
        return as_json({"count": 2000, "pipelines": [{"id": i + 1} for i in range(int(query["pageSize"]) + 1)]})
    with HostileServer(answer) as server, capture_logs() as logs:
        with pytest.raises(DevLakeMalformed, match="a page of 501 items, 500 asked for"):
            list(client_for(server.url).iter_pipelines())
        with pytest.raises(DevLakeMalformed, match="a page of 11 items"):
            client_for(server.url).pipelines_page(1, 10)
    assert len(malformed_lines(logs)) == 2


def test_a_list_that_repeats_its_page_is_malformed():
    def answer(_method, _path, query):
        return as_json({"count": 10**6, "projects": [{"name": f"p{i}"} for i in range(100)]})
    with HostileServer(answer) as server, capture_logs() as logs:
        with pytest.raises(DevLakeMalformed, match="repeats only items"):
            list(client_for(server.url).iter_projects())
    assert server.calls == 2 and len(malformed_lines(logs)) == 1


def test_one_repeated_item_from_a_shifted_list_is_dropped_not_fatal():
    # newest first, a pipeline created between two page reads shifts the list by one
    pages = {1: [3, 2], 2: [2, 1]}

    def answer(_method, _path, query):
        return as_json({"count": 3, "pipelines": [{"id": i} for i in pages.get(int(query["page"]), [])]})
    with HostileServer(answer) as server:
        assert [p["id"] for p in client_for(server.url).iter_pipelines(page_size=2)] == [3, 2, 1]


def test_a_remote_scope_walk_with_endless_page_tokens_has_a_page_cap(small_caps):
    tokens = itertools.count()

    def answer(_method, _path, query):
        return as_json({"children": [], "nextPageToken": f"t{next(tokens)}"})
    with HostileServer(answer) as server, capture_logs() as logs:
        with pytest.raises(DevLakeMalformed, match=f"more than {answers.MAX_REMOTE_PAGES} pages"):
            walk_remote_scopes(client_for(server.url), Connection("github", 1, "gh"))
    assert server.calls == answers.MAX_REMOTE_PAGES
    assert len(malformed_lines(logs)) == 1


@pytest.mark.parametrize("route, body", [
    (r"^/blueprints$", {"count": 1, "blueprints": [{"id": "7", "connections": []}]}),
    (r"^/projects$", {"count": 1, "projects": [{"name": 7}]}),
    (r"^/projects$", {"count": 1, "projects": [{"name": "hand", "blueprint": {"id": "1"}}]}),
])
def test_a_malformed_project_or_blueprint_list_means_no_write_at_all(tmp_path, route, body):
    with FakeDevLake(clock=lambda: NOW.astimezone(UTC)) as fake:
        gh = fake.add_connection("github", "gh")
        for i in range(3):
            fake.add_remote_scope("github", gh, f"repo{i}", full_name=f"o/repo{i}")
        fake.add_project("hand-made")
        fake.inject("GET", route, status=200, body=body, times=-1)
        fake.reset_log()
        settings = settings_for(fake, tmp_path)
        with capture_logs() as logs:
            code, report = run_once(settings, build_client(settings, sleep=lambda s: None), NOW)
        assert code == 1, report.failures()
        assert fake.mutating_count() == 0
    assert [e["event"] for e in logs].count("run_completed") == 1
    assert malformed_lines(logs)


def test_a_wrong_typed_connection_fails_only_that_plugin(tmp_path):
    with FakeDevLake(clock=lambda: NOW.astimezone(UTC)) as fake:
        fake.add_connection("github", "gh")
        jira = fake.add_connection("jira", "jira")
        fake.add_remote_scope("jira", jira, "Board 0")
        fake.inject("GET", r"^/plugins/github/connections$", status=200, body=[{"id": "x1"}], times=-1)
        settings = settings_for(fake, tmp_path)
        with capture_logs() as logs:
            code, _report = run_once(settings, build_client(settings, sleep=lambda s: None), NOW)
        assert code == 1
        assert [p["name"] for p in fake.projects.values()] == ["jira/Board 0"]
    assert [e["event"] for e in logs].count("run_completed") == 1


def test_a_body_over_the_size_cap_is_refused(monkeypatch):
    from modules import api
    monkeypatch.setattr(api, "MAX_BODY_BYTES", 100_000)
    huge = json.dumps({"count": 1, "projects": [{"name": "p", "description": "x" * 200_000}]}).encode()
    with HostileServer(lambda *_: (200, {}, iter([huge[i:i + 8192] for i in range(0, len(huge), 8192)]))) \
            as server, capture_logs() as logs:
        with pytest.raises(DevLakeMalformed, match="body larger than 100000 bytes"):
            list(client_for(server.url).iter_projects())
    assert len(malformed_lines(logs)) == 1


def test_a_dripping_body_fails_at_the_timeout_not_after_the_last_byte():
    from modules.api import DevLakeUnavailable
    body = json.dumps({"count": 0, "projects": []}).encode() + b" " * 200
    with HostileServer(lambda *_: (200, {}, (body[i:i + 1] for i in range(len(body)))), pause=0.02) as server:
        from config import load_settings
        settings = load_settings({"DEVLAKE_URL": server.url, "DEVLAKE_HTTP_RETRIES": "0",
                                  "DEVLAKE_TIMEOUT_SECONDS": "0.5"})
        started = time.monotonic()
        with pytest.raises(DevLakeUnavailable, match="within the timeout"):
            list(build_client(settings).iter_projects())
        assert time.monotonic() - started < 2.0  # the drip alone takes 4.5 s; each byte comes in time


def test_a_redirect_to_another_host_is_not_followed():
    """Issue 21: our API key never travels to a host DEVLAKE_URL does not name; the error says why."""
    with HostileServer(lambda *_: as_json({"count": 0, "projects": []})) as elsewhere:
        def answer(method, path, query):
            return 302, {"Location": f"{elsewhere.url}/projects", "Content-Length": "0"}, b""
        with HostileServer(answer) as server:
            from config import load_settings
            settings = load_settings({"DEVLAKE_URL": server.url, "DEVLAKE_HTTP_RETRIES": "0",
                                      "DEVLAKE_API_KEY": "k-secret"})
            with pytest.raises(DevLakeError, match="redirect to another host, not followed: http://127.0.0.1:"):
                list(build_client(settings).iter_projects())
        assert elsewhere.calls == 0


def test_a_same_host_redirect_is_followed():
    def answer(method, path, query):
        if path == "/old/projects":
            return 307, {"Location": "/projects?page=1&pageSize=100", "Content-Length": "0"}, b""
        return as_json({"count": 1, "projects": [{"name": "p"}]})
    with HostileServer(answer) as server:
        assert [p["name"] for p in client_for(server.url + "/old").iter_projects()] == ["p"]


def test_an_echoed_authorization_header_is_masked_in_the_error():
    body = b"bad request; you sent Authorization: Basic dXNlcjpwYXNz and X-Other: 1"
    with HostileServer(lambda *_: (400, {"Content-Type": "text/plain"}, body)) as server:
        with pytest.raises(DevLakeError) as caught:
            list(client_for(server.url).iter_projects())
    assert "dXNlcjpwYXNz" not in str(caught.value) and "dXNlcjpwYXNz" not in (caught.value.body or "")
    assert "Authorization: ***" in caught.value.message


def header_drip(*_):
    """A status line and 20 headers, one byte per chunk (HostileServer sleeps between chunks)."""
    raw = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"y" * 20) for i in range(20)) + b"\r\n"
    return None, {}, (raw[i:i + 1] for i in range(len(raw)))


def test_a_header_drip_fails_at_the_total_timeout():
    """Issue 21: 1 byte per 50 ms of status line and headers; each byte comes well within the read
    timeout, so only a total deadline per attempt ends it."""
    from modules.api import DevLakeUnavailable
    with HostileServer(header_drip, pause=0.05) as server:
        from config import load_settings
        settings = load_settings({"DEVLAKE_URL": server.url, "DEVLAKE_HTTP_RETRIES": "1",
                                  "DEVLAKE_RETRY_BACKOFF_SECONDS": "0", "DEVLAKE_TIMEOUT_SECONDS": "0.5"})
        started = time.monotonic()
        with pytest.raises(DevLakeUnavailable, match="no complete answer within the timeout of 0.5 s"):
            build_client(settings).ping()
        elapsed = time.monotonic() - started
    assert server.calls == 2  # the retry got its own 0.5 s
    assert elapsed < 2.0  # the drip alone takes 30 s


def test_a_dripping_body_is_cut_at_the_deadline_of_its_attempt():
    """The body shares the attempt's deadline with the headers, and the cut is a timeout,
    never a truncated body read as malformed JSON."""
    from modules.api import DevLakeUnavailable
    body = json.dumps({"count": 0, "projects": []}).encode() + b" " * 400
    with HostileServer(lambda *_: (200, {"Content-Length": str(len(body))}, (body[i:i + 1] for i in range(len(body)))),
                       pause=0.05) as server:
        started = time.monotonic()
        with pytest.raises(DevLakeUnavailable, match="within the timeout"):
            from config import load_settings
            build_client(load_settings({"DEVLAKE_URL": server.url, "DEVLAKE_HTTP_RETRIES": "0",
                                        "DEVLAKE_TIMEOUT_SECONDS": "0.5"})).ping()
        assert time.monotonic() - started < 1.5


def _retrying_client(url: str, sleeps: list, now: list):
    from modules.api import DevLakeClient
    from utils.http import make_session

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds
    session = make_session(api_key=None, retries=5, backoff_seconds=0, sleep=sleep)
    session.retry_window.monotonic = lambda: now[0]
    return DevLakeClient(session, url, timeout=5)


def test_a_retry_after_beyond_the_cap_is_not_waited_for():
    """Issue 21: `Retry-After: 100000` used to cost 300 s per retry; now the request fails at once."""
    sleeps: list = []
    with HostileServer(lambda *_: (503, {"Retry-After": "100000", "Content-Length": "0"}, b"")) as server, \
            capture_logs() as logs:
        from modules.api import DevLakeUnavailable
        with pytest.raises(DevLakeUnavailable):
            _retrying_client(server.url, sleeps, [0.0]).ping()
    assert sleeps == [] and server.calls == 1
    [line] = [e for e in logs if e["event"] == "devlake_retry_not_waited"]
    assert line["wait_seconds"] >= 300 and line["allowed_seconds"] == 300


def test_retry_waits_stay_within_the_window():
    """A poll's waits end before its interval is over: 25 s + 25 s fit in 60 s, a third does not."""
    sleeps: list = []
    with HostileServer(lambda *_: (429, {"Retry-After": "25", "Content-Length": "0"}, b"")) as server:
        client = _retrying_client(server.url, sleeps, [0.0])
        client.limit_retry_waits(60)
        with pytest.raises(DevLakeError) as caught:
            client.ping()
    assert caught.value.status == 429
    assert sleeps == [25, 25] and server.calls == 3


def test_a_header_drip_through_an_http_proxy_fails_at_the_total_timeout(monkeypatch):
    """HTTP_PROXY: the proxy's connection is watched like a direct one (a proxy that drips, or
    relays a DevLake that does, would otherwise hold the request for as long as it drips)."""
    from modules.api import DevLakeUnavailable
    with HostileServer(header_drip, pause=0.05) as proxy:
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        from config import load_settings
        settings = load_settings({"DEVLAKE_URL": "http://devlake.invalid:8080", "DEVLAKE_HTTP_RETRIES": "0",
                                  "DEVLAKE_RETRY_BACKOFF_SECONDS": "0", "DEVLAKE_TIMEOUT_SECONDS": "0.5"})
        started = time.monotonic()
        with pytest.raises(DevLakeUnavailable, match="no complete answer within the timeout of 0.5 s"):
            build_client(settings).ping()
        elapsed = time.monotonic() - started
    assert proxy.calls == 1  # the request went through the proxy
    assert elapsed < 2.0  # the drip alone takes 30 s
