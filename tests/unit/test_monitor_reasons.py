"""The failure-reason classifier against real DevLake / GitHub / GitLab / Jira error texts, and masking."""
import pytest

from modules.monitoring.reasons import MESSAGE_LIMIT, REASONS, classify, explain, mask

# Texts as DevLake stores them in a failed task's `message` (`docs/devlake-api.md` §9.4):
# helpers/pluginhelper/api/api_async_client.go wraps the upstream body in "Retry exceeded ... Response: ...".
REAL = [
    ("rate_limited", "Retry exceeded 3 times calling repos/acme/api/pulls. The last error was: Http DoAsync error "
                     "calling [GET https://api.github.com/repos/acme/api/pulls]. Response: {\"message\":\"You have "
                     "exceeded a secondary rate limit. Please wait a few minutes before you try again.\","
                     "\"documentation_url\":\"https://docs.github.com/rest/overview/rate-limits\"} (403)"),
    ("rate_limited", "Response: {\"message\":\"API rate limit exceeded for user ID 1234.\"} (403)"),
    ("rate_limited", "Http DoAsync error calling [GET https://gitlab.com/api/v4/projects/7/merge_requests]. "
                     "Response: Retry later (429)"),
    ("rate_limited", "Jira Cloud: Rate limit exceeded. Too Many Requests (429)"),
    ("unauthorized", "Response: {\"message\":\"Bad credentials\",\"documentation_url\":"
                     "\"https://docs.github.com/rest\"} (401)"),
    ("unauthorized", "Http DoAsync error calling [GET https://gitlab.com/api/v4/projects/42/issues]. "
                     "Response: {\"message\":\"401 Unauthorized\"} (401)"),
    ("unauthorized", "authentication failed, please check your AccessToken"),
    ("unauthorized", "Response: {\"error\":\"invalid_token\",\"error_description\":\"Token is expired\"} (401)"),
    ("forbidden", "Response: {\"message\":\"Resource not accessible by integration\"} (403)"),
    ("forbidden", "Response: {\"message\":\"403 Forbidden\"} (403)"),
    ("not_found", "Response: {\"message\":\"Not Found\",\"documentation_url\":\"https://docs.github.com/rest\"} (404)"),
    ("not_found", "Response: {\"errorMessages\":[\"Board 123 does not exist or you do not have permission to see "
                  "it.\"],\"errors\":{}} (404)"),
    ("not_found", "Http DoAsync error calling [GET https://gitlab.com/api/v4/projects/9]. "
                  "Response: {\"message\":\"404 Project Not Found\"} (404)"),
    ("timeout", "Get \"https://api.github.com/graphql\": context deadline exceeded (Client.Timeout exceeded while "
                "awaiting headers)"),
    ("timeout", "dial tcp 140.82.112.6:443: i/o timeout"),
    ("network", "read tcp 172.18.0.4:51234->140.82.112.6:443: read: connection reset by peer"),
    ("network", "dial tcp: lookup gitlab.internal on 127.0.0.11:53: no such host"),
    ("network", "Post \"https://jira.example.com/rest/api/2/search\": EOF"),
    ("network", "dial tcp 10.0.0.5:443: connect: connection refused"),
    ("other", "subtask collectApiPullRequests ended unexpectedly"),
    ("other", "Error 1062 (23000): Duplicate entry 'x' for key 'PRIMARY'"),
    ("other", ""),
]


@pytest.mark.parametrize("reason, message", REAL, ids=[f"{r}-{i}" for i, (r, _) in enumerate(REAL)])
def test_real_error_texts(reason, message):
    assert classify(message) == reason


def test_every_reason_but_interrupted_has_a_real_text():
    assert {r for r, _ in REAL} == set(REASONS) - {"interrupted"}


def test_rate_limit_wording_wins_over_403():
    assert classify("You have exceeded a secondary rate limit (403)") == "rate_limited"
    assert classify("403 Forbidden") == "forbidden"


def test_a_status_code_inside_a_url_or_id_is_not_the_answer():
    # pull request 404 and issue 401 exist; the call failed on the network, not with a 404 or a 401
    assert classify("Http DoAsync error calling [GET https://api.github.com/repos/acme/api/pulls/404/commits]. "
                    "read tcp 10.0.0.4:51234->140.82.112.6:443: read: connection reset by peer") == "network"
    assert classify("calling repos/acme/api/issues/401/comments?page=429: context deadline exceeded") == "timeout"
    assert classify("dial tcp gitlab.internal:403: connect: connection refused") == "network"


@pytest.mark.parametrize("secret_text, secret", [
    ("calling [GET https://api.github.com/x?access_token=ghp_abcdefgh12345678]", "ghp_abcdefgh12345678"),
    ("calling [GET https://api.github.com/x?access_token=short1]", "short1"),
    ("Authorization: Bearer xyz", "xyz"),
    ("Bearer xyz rejected", "xyz"),
    ("request header \"Authorization\":\"token abc\"", "abc"),
    ("clone https://user:pa55w0rd@git.example.com/a/b.git failed", "pa55w0rd"),
    ("clone https://user:p@ss@git.example.com/a/b.git failed", "ss"),
    ("Response: {\"token\":\"sekr1t\",\"x\":1}", "sekr1t"),
    ("PRIVATE-TOKEN: glpat-abcd sent", "glpat-abcd"),
    ("x-api-key: k3yk3y", "k3yk3y"),
    ("Authorization: Bearer s3cr3t-token-value", "s3cr3t-token-value"),
    ("clone https://oauth2:glpat-abcdefghijkl@gitlab.com/a/b.git failed", "glpat-abcdefghijkl"),
    ("POST https://jira/rest?password=hunter22&x=1", "hunter22"),
    ("token github_pat_11ABCDEFG0123456789", "github_pat_11ABCDEFG0123456789"),
])
def test_secrets_are_masked(secret_text, secret):
    masked = mask(secret_text)
    assert secret not in masked and "***" in masked


def test_messages_are_cut_to_500_characters():
    assert len(mask("x" * 5000)) == MESSAGE_LIMIT


def test_the_failed_task_is_the_first_failed_in_plan_order():
    tasks = [
        {"id": 9, "plugin": "refdiff", "status": "TASK_FAILED", "message": "EOF", "failedSubTask": "calcRefDiffs",
         "pipelineRow": 3, "pipelineCol": 1},
        {"id": 8, "plugin": "gitlab", "status": "TASK_FAILED", "message": "Not Found (404)",
         "failedSubTask": "collectApiMergeRequests", "pipelineRow": 1, "pipelineCol": 1},
        {"id": 7, "plugin": "gitextractor", "status": "TASK_COMPLETED", "pipelineRow": 1, "pipelineCol": 2},
    ]
    detail = explain(tasks)
    assert (detail.reason, detail.plugin, detail.failed_subtask) == ("not_found", "gitlab", "collectApiMergeRequests")


def test_interrupted_wins_and_no_tasks_is_other():
    running = [{"id": 1, "plugin": "github", "status": "TASK_FAILED", "message": "", "failedSubTask": ""}]
    assert explain(running, interrupted=True).reason == "interrupted"
    assert explain(running, interrupted=True).plugin == "github"
    assert explain(None).reason == "other" and explain(None).plugin == "unknown"
    assert explain([{"status": "TASK_FAILED", "plugin": "a b\nc"}]).plugin == "unknown"  # not a label value


def test_the_failed_tasks_connection_comes_from_its_options():
    def task(options):
        return [{"id": 1, "plugin": "github", "status": "TASK_FAILED", "message": "401", "options": options}]
    assert explain(task({"connectionId": 3, "githubId": 206444, "name": "acme/api"})).connection_id == "3"
    assert explain(task({"connectionId": "12"})).connection_id == "12"
    for options in (None, {}, {"url": "https://github.com/acme/api.git"}, {"connectionId": True},
                    {"connectionId": "x y"}, {"connectionId": 0}):
        assert explain(task(options)).connection_id == "unknown"  # gitextractor and friends name none
