"""Reading a counted failure's tasks: a failure whose tasks cannot be read is still explained, and not forever."""
from modules.api import DevLakeError, DevLakeUnavailable
from modules.monitoring import explain
from modules.monitoring.state import MonitorState, ProjectStats, Unexplained


class Client:
    """pipeline_tasks answers from `answers` (an exception is raised) and counts the reads."""

    def __init__(self, answer):
        self.answer, self.reads = answer, 0

    def pipeline_tasks(self, pipeline_id):
        self.reads += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def state_with_one_failure(interrupted=False) -> MonitorState:
    state = MonitorState(watermark=7, floor=0.0)
    state.projects["github/a"] = ProjectStats(failures=1, runs=1)
    state.unexplained["7@t"] = Unexplained(7, "github/a", 100.0, interrupted)
    return state


def round_(state, client):
    return explain.apply_answers(state, explain.read(client, explain.pending(state)))


def test_unreadable_tasks_become_other_after_max_attempts_and_are_never_read_again():
    state = state_with_one_failure()
    client = Client(DevLakeError("boom", status=500, method="GET", path="/pipelines/7/tasks"))
    for _ in range(explain.MAX_ATTEMPTS - 1):
        assert round_(state, client) == []
        assert "7@t" in state.unexplained
    ((item, detail),) = round_(state, client)
    assert (detail.reason, detail.plugin, detail.failed_subtask) == ("other", "unknown", "unknown")
    assert "tasks not readable" in detail.message and "boom" in detail.message
    assert state.reason_counts == {("unknown", "other"): 1.0}
    assert state.projects["github/a"].last_reason == "other"
    assert state.unexplained == {}
    reads = client.reads
    assert round_(state, client) == [] and client.reads == reads == explain.MAX_ATTEMPTS


def test_an_interrupted_failure_keeps_its_reason_when_its_tasks_cannot_be_read():
    state = state_with_one_failure(interrupted=True)
    client = Client(DevLakeError("boom", status=500, method="GET", path="/pipelines/7/tasks"))
    for _ in range(explain.MAX_ATTEMPTS):
        done = round_(state, client)
    assert [d.reason for _, d in done] == ["interrupted"]


def test_devlake_unreachable_costs_no_attempt():
    state = state_with_one_failure()
    down = Client(DevLakeUnavailable("connection refused", method="GET", path="/pipelines/7/tasks"))
    for _ in range(explain.MAX_ATTEMPTS + 2):
        assert round_(state, down) == []
    assert state.unexplained["7@t"].attempts == 0
    tasks = [{"id": 1, "plugin": "github", "status": "TASK_FAILED", "failedSubTask": "collectApiIssues",
              "message": "Response: {\"message\":\"Not Found\"} (404)"}]
    ((_, detail),) = round_(state, Client(tasks))
    assert (detail.reason, detail.plugin) == ("not_found", "github")
