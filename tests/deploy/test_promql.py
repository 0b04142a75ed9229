"""Every PromQL expression in the dashboards and alert rules is valid and uses metrics the exporter exposes."""
from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from deploy_support import (
    CONTRACT_METRICS,
    HIGH_CARDINALITY,
    PROMETHEUS_SYNTHETIC,
    ROOT,
    contract_sample_names,
    dashboard_expressions,
    dashboard_variable_metrics,
    metric_names,
    prometheus_rule_expressions,
    promtool_check_expressions,
    python,
    run,
)

ALL_EXPRESSIONS = dashboard_expressions() + prometheus_rule_expressions()


def referenced_names() -> dict[str, set[str]]:
    """metric name -> where it is used."""
    used: dict[str, set[str]] = {}
    for where, expr in ALL_EXPRESSIONS:
        for name in metric_names(expr):
            used.setdefault(name, set()).add(where)
    for where, name in dashboard_variable_metrics():
        used.setdefault(name, set()).add(where)
    return used


@pytest.mark.parametrize("expr, expected", [
    ('sum by (project_name) (increase(devlake_project_failures_total{project_name=~"a|b"}[30m])) > 0',
     {"devlake_project_failures_total"}),
    ("histogram_quantile(0.95, sum by (le) (rate(devlake_monitor_poll_duration_seconds_bucket[5m])))",
     {"devlake_monitor_poll_duration_seconds_bucket"}),
    ('absent(x_total) and on () (up{job="devlake-monitor"} == 1)', {"x_total", "up"}),
    ("time() - a > 3 * 86400 unless on (job, instance) b == bool 0", {"a", "b"}),
    ('count(a offset 1h) or vector(0) + {__name__="c"}', {"a", "c"}),
    ("sum(rate(a[5m])) by (x) / ignoring (y) group_left (z) b", {"a", "b"}),
])
def test_metric_name_scanner(expr, expected):
    assert metric_names(expr) == expected


def test_expressions_were_found():
    kinds = {where.split(":")[0].split(" ")[0] for where, _ in ALL_EXPRESSIONS}
    assert len(dashboard_expressions()) >= 20
    assert len(prometheus_rule_expressions()) >= 10
    assert {"devlake-automation.json", "prometheus"} <= kinds


def test_every_expression_is_valid_promql(tmp_path):
    result = promtool_check_expressions(ALL_EXPRESSIONS, tmp_path)
    if result.returncode != 0:
        # name the offending expressions, not just their index in the temp file
        detail = result.stdout + result.stderr
        for i, (where, expr) in enumerate(ALL_EXPRESSIONS):
            if f"check:expr_{i}" in detail or f"expr_{i}\"" in detail:
                detail += f"\n{where}: {expr}"
        pytest.fail(detail)


def test_the_check_rejects_invalid_promql(tmp_path):
    result = promtool_check_expressions([("bad", "sum by (project_name (devlake_up)")], tmp_path)
    assert result.returncode != 0


def test_expressions_use_only_contract_metrics():
    allowed = contract_sample_names() | PROMETHEUS_SYNTHETIC
    unknown = {name: sorted(where) for name, where in referenced_names().items() if name not in allowed}
    assert not unknown, f"metrics outside the exporter's contract: {unknown}"


def test_alerts_never_use_the_per_failure_series():
    for where, expr in prometheus_rule_expressions():
        assert HIGH_CARDINALITY not in metric_names(expr), where


# --- against the real exporter --------------------------------------------------------------

@pytest.fixture(scope="module")
def real_exposition(tmp_path_factory) -> str:
    """`blueprint_monitor.py --once` against the fake DevLake, after one `manage_projects.py --once`."""
    if not (ROOT / "blueprint_monitor.py").exists():
        pytest.skip("blueprint_monitor.py is not in the tree yet: checked against the contract list only")
    try:
        from sandbox.fake_devlake import FakeDevLake
    except ImportError:
        pytest.skip("sandbox.fake_devlake is not in the tree yet: checked against the contract list only")
    state = tmp_path_factory.mktemp("state")
    fake = FakeDevLake(latency=0)
    url = fake.start()
    try:
        env = dict(os.environ, DEVLAKE_URL=url, STATE_DIR=str(state), LOG_FORMAT="json",
                   DEVLAKE_RETRY_BACKOFF_SECONDS="0", DEVLAKE_HTTP_RETRIES="0",
                   DEVLAKE_UI_URL="http://config-ui.example:4000")  # devlake_monitor_config_ui_info
        # The automation's last-run file is what the monitor exposes as devlake_automation_*.
        automation = run([python(), "manage_projects.py", "--once"], timeout=60, cwd=ROOT, env=env)
        assert automation.returncode == 0, automation.stderr
        now = datetime.now(UTC)
        api = fake.add_project("github/api")
        web = fake.add_project("github/web")
        # managed, never ran: devlake_project_first_collection_due_timestamp_seconds
        fake.add_project("github/new", labels=("managed-by/devlake-automation",))
        fake.add_pipeline(api, "TASK_COMPLETED", finished_at=now - timedelta(hours=3))
        fake.add_pipeline(api, "TASK_FAILED", finished_at=now - timedelta(hours=1))
        fake.add_pipeline(web, "TASK_RUNNING", began_at=now - timedelta(minutes=20))
        # devlake_project_retired: a blueprint the automation retired (modules/lifecycle.py)
        fake.add_project("github/gone", labels=["devlake-automation/retired"], enable=False)
        fake.add_connection("github", "github-main")  # devlake_connection_* (one check in --once)
        monitor = run([python(), "blueprint_monitor.py", "--once"], timeout=60, cwd=ROOT, env=env)
        assert monitor.returncode == 0, monitor.stderr
        return monitor.stdout
    finally:
        fake.stop()


def exposed_sample_names(text: str) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def test_referenced_metrics_are_really_exposed(real_exposition):
    exposed = exposed_sample_names(real_exposition) | PROMETHEUS_SYNTHETIC
    missing = {name: sorted(where) for name, where in referenced_names().items() if name not in exposed}
    assert not missing, f"used in dashboards/rules but not exposed by blueprint_monitor.py: {missing}"


def test_contract_matches_the_real_exposition(real_exposition):
    from prometheus_client.parser import text_string_to_metric_families
    families = {f.name: f.type for f in text_string_to_metric_families(real_exposition)}
    exposed = exposed_sample_names(real_exposition)
    assert contract_sample_names() <= exposed, f"missing: {sorted(contract_sample_names() - exposed)}"
    for metric, kind in CONTRACT_METRICS.items():
        family = metric[: -len("_total")] if kind == "counter" else metric
        assert families.get(family) == kind, f"{metric}: exposed as {families.get(family)}, contract says {kind}"
