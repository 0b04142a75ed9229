"""Why a pipeline failed: the failed task picked from GET /pipelines/{id}/tasks, its message classified.

A failed task carries `plugin`, `failedSubTask` and `message` = the Go error text,
free form, often a whole upstream response body (`docs/devlake-api.md` §9.4;
backend/core/models/task.go, backend/core/runner/run_task.go). The message
becomes a low-cardinality `reason` through a small ordered table of patterns;
the text itself goes only to the log, masked and cut to MESSAGE_LIMIT.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from modules import statuses
from utils.redact import mask_authorization

REASONS = ("rate_limited", "unauthorized", "forbidden", "not_found", "timeout", "network", "interrupted", "other")
MESSAGE_LIMIT = 500
UNKNOWN = "unknown"  # plugin / subtask when the tasks cannot be read or name none

# An HTTP status code standing alone ("(404)", "status 404", "404 Not Found"), not a
# number inside a URL path, an id or a query value ("repos/acme/api/pulls/404/files").
_CODE = r"(?<![\w/.#=:-]){}(?![\w/.])"

# First match wins. Rate-limit wording comes before 401/403: GitHub answers an
# exhausted or secondary rate limit with 403, GitLab and Jira with 429.
_TABLE: tuple[tuple[str, re.Pattern], ...] = tuple((reason, re.compile(pattern, re.I)) for reason, pattern in (
    ("rate_limited", r"rate.?limit|too many requests|" + _CODE.format(429) + r"|abuse detection|retry.after"),
    ("unauthorized", _CODE.format(401) + r"|unauthori[sz]ed|bad credentials|authentication failed"
                     r"|invalid (access )?token|token (has )?(expired|been revoked|is expired|revoked)"
                     r"|expired token|revoked"),
    ("forbidden", _CODE.format(403) + r"|forbidden|not accessible by|permission denied|access denied"),
    ("not_found", _CODE.format(404) + r"|not found|does not exist|doesn't exist|no such (project|repository)"),
    ("timeout", r"deadline exceeded|time(d)? ?out|timeout"),
    ("network", r"connection (refused|reset)|reset by peer|no such host|\beof\b|broken pipe|network is unreachable"
                r"|no route to host|tls handshake|server misbehaving|dial tcp"),
))

# Secrets that can appear in an error text: URL credentials, auth headers,
# token=/password= parameters and the token shapes of GitHub, GitLab and Slack.
_SECRETS = tuple(re.compile(p, re.I) for p in (
    # user:password@ in a URL; the password may itself hold an unencoded "@"
    r"(://)[^/\s:@]+:[^/\s]*(@)",
    # an Authorization header's whole value of any scheme: utils/redact.py, applied in mask()
    r"(\bbearer\s+)[A-Za-z0-9._~+/=-]+()",
    r"(\b(?:token|basic) )[A-Za-z0-9._~+/=-]{8,}()",
    # key=value, key: value and "key":"value" (query strings, headers, JSON bodies)
    r"((?<![\w-])(?:access_token|private[_-]token|client_secret|token|password|passwd|secret|api[_-]?key"
    r"|x-api-key)\"?\s*[=:]\s*\"?)[^&\s\"',\]]+()",
    r"()\b(?:gh[pousr]_|github_pat_|glpat-|xox[abp]-)[A-Za-z0-9_-]{4,}()",
))
MASK = "***"


def classify(message: str | None) -> str:
    """The reason a failed task's message names; `other` when no pattern matches."""
    text = message or ""
    for reason, pattern in _TABLE:
        if pattern.search(text):
            return reason
    return "other"


def mask(message: str | None, limit: int = MESSAGE_LIMIT) -> str:
    """The message with secrets replaced by *** and cut to `limit` characters (after masking)."""
    text = mask_authorization(message or "")
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: m.group(1) + MASK + m.group(2), text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class FailureDetail:
    """What one failed pipeline's tasks say: the labels and the log line's fields."""

    reason: str
    plugin: str = UNKNOWN
    failed_subtask: str = UNKNOWN
    message: str = ""
    # The failed task's `options.connectionId` (§9.4): which connection's alerts inhibit this one.
    connection_id: str = UNKNOWN


def explain(tasks: Iterable[object] | None, *, interrupted: bool = False) -> FailureDetail:
    """The failure of a pipeline from its `tasks` (the list of GET /pipelines/{id}/tasks, may be None).

    The failed task is the first TASK_FAILED one in plan order (row, col), else a
    TASK_CANCELLED one. `interrupted` (DevLake restarted while it ran) is the
    pipeline's fate whatever its tasks say: they were marked failed with no message.
    """
    rows = [t for t in tasks or [] if isinstance(t, dict)]
    failed = sorted((t for t in rows if t.get("status") == statuses.FAILED), key=_plan_order) or \
        sorted((t for t in rows if t.get("status") == statuses.CANCELLED), key=_plan_order)
    if not failed:
        return FailureDetail("interrupted" if interrupted else "other")
    task = failed[0]
    message = str(task.get("message") or "")
    return FailureDetail(
        reason="interrupted" if interrupted else classify(message),
        plugin=_label(task.get("plugin")),
        failed_subtask=_label(task.get("failedSubTask")),
        message=mask(message),
        connection_id=_connection_id(task.get("options")),
    )


def _connection_id(options: object) -> str:
    """`options.connectionId` of a plugin task (github, gitlab, jira...); gitextractor and the
    metric plugins have none. An id is a small positive integer, as in devlake_connection_up."""
    value = options.get("connectionId") if isinstance(options, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        return UNKNOWN
    return str(int(value)) if int(value) > 0 else UNKNOWN


def _plan_order(task: dict) -> tuple:
    return (_int(task.get("pipelineRow")), _int(task.get("pipelineCol")), _int(task.get("id")))


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _label(value: object) -> str:
    """Plugin and subtask names are short identifiers; anything else is not a label value."""
    text = str(value or "").strip()
    return text[:64] if text and re.fullmatch(r"[\w.-]+", text) else UNKNOWN
