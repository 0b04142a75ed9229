"""An in-process HTTP fake of Apache DevLake's REST API (see `docs/devlake-api.md`).

Usage::

    with FakeDevLake(api_key="k") as fake:
        cid = fake.add_connection("github", "gh")
        fake.add_remote_group("github", cid, "acme", "acme")
        fake.add_remote_scope("github", cid, "api", parent_id="acme")
        requests.get(f"{fake.url}/rest/plugins/github/connections",
                     headers={"Authorization": "Bearer k"})

Fault-injection patterns are matched with `re.search` against the RAW request path (still
percent-encoded, e.g. `/projects/a%2Fb`), with any `/rest` prefix stripped and without the query
string. `count(path_prefix=...)` accepts either the raw path or the `/rest`-stripped one.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from .blueprint_rules import make_plan
from .common import FINISHED_STATUSES, ApiError, cron_matches, dumps, to_utc
from .notifier import Notifier
from .pipelines import Outcome
from .plugins import INT_ID_PLUGINS, build_scope_data, default_full_name, default_scope_id, scope_id_of
from .server import TRANSIENT_KINDS, App, Chaos, FakeServer, Fault, RequestRecord
from .state import State

__all__ = ["FakeDevLake", "RequestRecord"]
MUTATING = ("POST", "PUT", "PATCH", "DELETE")


class FakeDevLake:
    def __init__(self, *, latency: float = 0.0, api_key: str | None = None, require_auth: bool = False,
                 clock: Callable[[], datetime] | None = None, remote_page_size: int = 100,
                 notification_endpoint: str | None = None, notification_secret: str = ""):
        self._state = State(clock, remote_page_size)
        self._app = App(self._state, latency=latency, api_key=api_key, require_auth=require_auth)
        self._server: FakeServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        if notification_endpoint:
            self.configure_notifications(notification_endpoint, notification_secret)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Bind (port 0 = any free port), serve in a daemon thread, return the base URL."""
        self._server = FakeServer((host, port), self._app)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-devlake", daemon=True)
        self._thread.start()
        self.url = f"http://{host}:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        self.configure_notifications(None)
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeDevLake:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def api_key(self) -> str | None:
        """Settable at any time: requests under /rest then need `Authorization: Bearer <key>`."""
        return self._app.api_key

    @api_key.setter
    def api_key(self, value: str | None) -> None:
        self._app.api_key = value

    @property
    def require_auth(self) -> bool:
        return self._app.require_auth

    @require_auth.setter
    def require_auth(self, value: bool) -> None:
        self._app.require_auth = value

    def emulate_rest_auth_gate_bug(self, on: bool = True) -> None:
        """With require_auth: answer /rest requests with a valid key 401 `unauthorized`, as DevLake
        main does with AUTH_ENABLED=true (`backend/server/api/middlewares.go`, `docs/devlake-api.md` §1.2)."""
        self._app.rest_gate_drops_user = on

    def set_forwarded_user_secret(self, secret: str | None) -> None:
        """DevLake's FORWARDED_USER_SECRET: X-Forwarded-User is honoured only with it (§1.2)."""
        self._app.forwarded_user_secret = secret

    @property
    def latency(self) -> float:
        return self._app.latency

    @latency.setter
    def latency(self, value: float) -> None:
        self._app.latency = value

    def configure_notifications(self, endpoint: str | None, secret: str = "", *, workers: int = 1) -> None:
        """DevLake's NOTIFICATION_ENDPOINT/NOTIFICATION_SECRET: from now on every pipeline status
        change is POSTed there, signed (sandbox/notifier.py). None turns it off."""
        with self._state.lock:
            old, self._state.notifier = self._state.notifier, (
                Notifier(endpoint, secret, workers=workers) if endpoint else None)
        if old is not None:
            old.stop()

    @property
    def notifier(self) -> Notifier | None:
        """What was sent (`.sent`), `.flush()`, `.drop_next(n)`; None when notifications are off."""
        return self._state.notifier

    # --- data setup --------------------------------------------------------------------------

    def add_plugin(self, name: str, *, has_connections: bool = True) -> None:
        with self._state.lock:
            self._state.plugins.add_plugin(name, has_connections=has_connections)

    def add_connection(self, plugin: str, name: str, **fields) -> int:
        with self._state.lock:
            if plugin not in self._state.plugins.plugins:
                self._state.plugins.add_plugin(plugin)
            return self._state.plugins.create_connection(plugin, {"name": name, **fields})["id"]

    def add_remote_group(self, plugin: str, connection_id: int, group_id: str, name: str,
                         parent_id: str | None = None, full_name: str | None = None) -> str:
        with self._state.lock:
            self._state.plugins.connection(plugin, connection_id)
            tree = self._state.plugins.tree(plugin, connection_id)
            if full_name is None and parent_id is not None and tree.group(parent_id):
                full_name = f"{tree.group(parent_id)['fullName']}/{name}"
            tree.add_group(group_id, name, parent_id, full_name)
            return group_id

    def add_remote_scope(self, plugin: str, connection_id: int, name: str, parent_id: str | None = None, *,
                         full_name: str | None = None, scope_id: str | int | None = None,
                         data: dict | None = None, external: bool = False) -> str:
        """Add an upstream scope; returns its scope id (the plugin's id field, as a string).
        Re-adding a known `scope_id` under another group reuses its data (quirk #21)."""
        with self._state.lock:
            plugins = self._state.plugins
            plugins.connection(plugin, connection_id)
            tree = plugins.tree(plugin, connection_id)
            parent = tree.group(parent_id)
            if parent_id is not None and parent is None:
                raise ValueError(f"unknown parent group {parent_id!r}")
            if data is None and scope_id is not None and str(scope_id) in tree.scope_data:
                data = tree.scope_data[str(scope_id)]
            if data is None:
                full = full_name or default_full_name(plugin, name, parent)
                if scope_id is None:
                    scope_id = default_scope_id(plugin, full, plugins.next_id("remote:" + plugin), external)
                if plugin in INT_ID_PLUGINS:
                    scope_id = int(scope_id)
                data = build_scope_data(plugin, scope_id=scope_id, name=name, full_name=full,
                                        parent=parent, external=external)
            full = full_name or data.get("fullName") or data.get("pathWithNamespace") or data.get("slug") \
                or default_full_name(plugin, name, parent)
            sid = scope_id_of(plugin, data)
            entry_id = data.get("ExternalId") or sid if plugin == "azuredevops_go" else sid
            tree.add_scope(entry_id, name, full, parent_id, sid, data)
            return sid

    def remove_remote_scope(self, plugin: str, connection_id: int, scope_id: str | int) -> None:
        """The scope is gone upstream: no longer listed by remote-scopes; DevLake's own data stays."""
        with self._state.lock:
            self._state.plugins.tree(plugin, connection_id).remove_scope(str(scope_id))

    def add_scope(self, plugin: str, connection_id: int, data: dict, scope_config_id: int = 0) -> None:
        """A scope DevLake already tracks (no request is logged, no GitHub call counted)."""
        with self._state.lock:
            self._state.plugins.connection(plugin, connection_id)
            self._state.plugins.upsert(plugin, connection_id, [{**data, "scopeConfigId": scope_config_id}])

    def add_scope_config(self, plugin: str, connection_id: int, name: str, **fields) -> int:
        with self._state.lock:
            return self._state.plugins.create_config(plugin, connection_id, {"name": name, **fields})["id"]

    def add_project(self, name: str, *, description: str = "", scopes=(), labels=(),
                    time_after: datetime | None = None, metrics: list[dict] | None = None,
                    enable: bool = True) -> int:
        """Create a project and its blueprint as POST /projects does; optionally connect
        (plugin, connectionId, scopeId) scopes. Returns the blueprint id."""
        with self._state.lock:
            projects = self._state.projects
            projects.create_project({"name": name, "description": description, "metrics": metrics})
            bp_id = projects.by_project[name]
            connections: dict[tuple[str, int], list] = {}
            for plugin, cid, sid in scopes:
                connections.setdefault((plugin, int(cid)), []).append({"scopeId": str(sid)})
            patch = {}
            if connections:
                patch["connections"] = [{"pluginName": p, "connectionId": c, "scopes": s}
                                        for (p, c), s in connections.items()]
            if labels:
                patch["labels"] = list(labels)
            if not enable:
                patch["enable"] = False
            if patch:
                projects.patch_blueprint(bp_id, patch)
            if time_after is not None:
                projects.blueprints[bp_id]["timeAfter"] = to_utc(time_after)
            return bp_id

    def add_pipeline(self, blueprint_id: int, status: str, *, began_at: datetime | None = None,
                     finished_at: datetime | None = None, created_at: datetime | None = None,
                     failure: dict | None = None) -> int:
        """Record a pipeline in any status (no pending check). blueprint_id 0 = ad-hoc.

        `failure`: what its failing task reports, {"message", "failedSubTask", "plugin"}."""
        with self._state.lock:
            state = self._state
            bp = state.projects.blueprint(blueprint_id) if blueprint_id else None
            plan = (make_plan(state, bp) if bp["mode"] == "NORMAL" else bp["plan"]) if bp else []
            if not plan:
                plan = [[{"plugin": "org", "subtasks": ["setProjectMapping"], "options": {}}]]
            if finished_at is not None and began_at is None and status in FINISHED_STATUSES:
                began_at = finished_at - timedelta(minutes=10)
            created = created_at or began_at or finished_at
            pipeline = state.pipelines.create(
                name=bp["name"] if bp else "adhoc-pipeline", blueprint_id=blueprint_id, plan=plan,
                labels=bp["labels"] if bp else (), time_after=bp["timeAfter"] if bp else None,
                skip_on_fail=bp["skipOnFail"] if bp else False, created_at=created, check_pending=False)
            if status != "TASK_CREATED":
                if status in ("TASK_RERUN", "TASK_RESUME"):
                    pipeline["status"] = status
                    state.pipelines.track(pipeline)
                else:
                    state.pipelines.set_status(pipeline["id"], status, finished_at=finished_at, began_at=began_at,
                                               failure=failure)
                    pipeline["updatedAt"] = to_utc(finished_at) if finished_at else pipeline["updatedAt"]
            return pipeline["id"]

    def set_pipeline_status(self, pipeline_id: int, status: str, finished_at: datetime | None = None,
                            failure: dict | None = None) -> None:
        with self._state.lock:
            self._state.pipelines.set_status(pipeline_id, status, finished_at=finished_at, failure=failure)

    def restart(self, *, resume_pipelines: bool = False) -> list[int]:
        """DevLake restarted: running pipelines become TASK_FAILED (RESUME_PIPELINES=false,
        finishedAt left NULL, no notification) or TASK_RESUME. Returns their ids."""
        with self._state.lock:
            return self._state.pipelines.mark_interrupted("TASK_RESUME" if resume_pipelines else "TASK_FAILED")

    def lock_pipeline_table(self, times: int = 1) -> None:
        """The next `times` reruns (-1: every one, 0: none again) find DevLake's pipeline table
        locked by another pending pipeline or a deletion and answer 400 after the lock timeout."""
        with self._state.lock:
            self._state.pipelines.table_locked = times

    def fail_connection_test(self, plugin: str, connection_id: int, status: int | None, message: str = "") -> None:
        """Make POST /plugins/{p}/connections/{id}/test answer `status` with `message`
        (e.g. 400 "Bad credentials"; circleci 401, `docs/devlake-api.md` §9.6); None heals it.
        GitHub access-token connections answer 200 `success: false` with `message` whatever
        `status` says, as DevLake does (`backend/plugins/github/api/connection_api.go`)."""
        with self._state.lock:
            if status is None:
                self._state.plugins.test_failures.pop((plugin, connection_id), None)
            else:
                self._state.plugins.test_failures[(plugin, connection_id)] = (status, message)

    def run_pending(self, outcome: Outcome | None = None, *,
                    older_than: float | None = None) -> list[int]:
        """Finish every TASK_CREATED/TASK_RERUN pipeline; `outcome(pipeline)` picks the status
        (default TASK_COMPLETED). Returns the ids it finished."""
        with self._state.lock:
            return self._state.pipelines.run_pending(outcome, older_than=older_than)

    # --- the queue (§9.5) ----------------------------------------------------------------------

    @property
    def max_parallel(self) -> int:
        """DevLake's PIPELINE_MAX_PARALLEL for `queue_step`: running pipelines at once, 0 = no limit."""
        return self._state.pipelines.max_parallel

    @max_parallel.setter
    def max_parallel(self, value: int) -> None:
        with self._state.lock:
            self._state.pipelines.max_parallel = int(value)

    def queue_step(self, outcome: Outcome | None = None, *,
                   min_run_seconds: float | None = None) -> tuple[list[int], list[int]]:
        """One turn of DevLake's runner: running pipelines finish with `outcome(pipeline)` (default
        TASK_COMPLETED), then up to `max_parallel` waiting ones start (priority, then id).
        Returns (finished ids, started ids)."""
        with self._state.lock:
            return self._state.pipelines.queue_step(outcome, min_run_seconds=min_run_seconds)

    def pending_count(self) -> int:
        """Pipelines in the queue now: TASK_CREATED, TASK_RERUN, TASK_RUNNING, TASK_RESUME."""
        with self._state.lock:
            return len(self._state.pipelines.in_queue)

    @property
    def max_pending_seen(self) -> int:
        """The most pipelines ever in the queue at once, since the last `reset_max_pending()`."""
        return self._state.pipelines.max_in_queue

    def reset_max_pending(self) -> None:
        """Start a new high-water mark at the current queue length."""
        with self._state.lock:
            self._state.pipelines.reset_max_in_queue()

    def fire_crons(self, at: datetime) -> list[int]:
        """DevLake's scheduler at the minute `at` (UTC, backend/server/services/init.go): every
        enabled, non-manual blueprint whose cronConfig fires then gets a pipeline, except one that
        still has a pending pipeline (createPipelineByBlueprint refuses, §9.5). Returns the new ids."""
        with self._state.lock:
            created = []
            for bp in list(self._state.projects.blueprints.values()):
                if not bp["enable"] or bp["isManual"] or not cron_matches(bp["cronConfig"], at):
                    continue
                if self._state.pipelines.has_pending(bp["id"]):
                    continue
                try:
                    created.append(self._state.projects.trigger(bp["id"], {})["id"])
                except ApiError:
                    continue  # e.g. "no task to run": DevLake logs it and goes on
            return created

    def delete_project(self, name: str) -> None:
        with self._state.lock:
            self._state.projects.delete_project(name)

    # --- inspection --------------------------------------------------------------------------

    def now(self) -> datetime:
        """The fake's clock, in UTC."""
        return self._state.now()

    # Inspection snapshots are in wire shape (times as RFC 3339 "Z" strings, projects with their
    # blueprint): what a client would read. Change state through the methods above or over HTTP.

    @property
    def projects(self) -> dict[str, dict]:
        with self._state.lock:
            store = self._state.projects
            return _wire({name: store.output(name) for name in store.projects})

    @property
    def blueprints(self) -> dict[int, dict]:
        with self._state.lock:
            return _wire(self._state.projects.blueprints)

    @property
    def pipelines(self) -> dict[int, dict]:
        with self._state.lock:
            return _wire(self._state.pipelines.pipelines)

    @property
    def github_api_calls(self) -> int:
        """GitHub API calls DevLake would make on PUT .../scopes (quirk #18)."""
        return self._state.plugins.github_api_calls

    def connections(self, plugin: str) -> list[dict]:
        with self._state.lock:
            return _wire(list(self._state.plugins.connections.get(plugin, {}).values()))

    def scopes(self, plugin: str, connection_id: int) -> list[dict]:
        with self._state.lock:
            return _wire(list(self._state.plugins.rows(plugin, connection_id).values()))

    def scope_configs(self, plugin: str, connection_id: int) -> list[dict]:
        with self._state.lock:
            return _wire(self._state.plugins.list_configs(plugin, connection_id))

    def pipeline_tasks(self, pipeline_id: int) -> list[dict]:
        with self._state.lock:
            return _wire(self._state.pipelines.latest_tasks(pipeline_id))

    @property
    def requests(self) -> list[RequestRecord]:
        with self._app.log_lock:
            return list(self._app.records)

    def count(self, method: str | None = None, path_prefix: str | None = None) -> int:
        return sum(1 for r in self.requests if (method is None or r.method == method.upper())
                   and (path_prefix is None or r.path.startswith(path_prefix)
                        or r.raw_path.startswith(path_prefix)))

    def mutating_count(self) -> int:
        return sum(1 for r in self.requests if r.method in MUTATING)

    def reset_log(self) -> None:
        with self._app.log_lock:
            self._app.records.clear()

    # --- fault injection ---------------------------------------------------------------------

    def inject(self, method: str, path_regex: str, *, status: int | None = 503, times: int = 1,
               body: bytes | str | dict | None = None, headers: dict | None = None, delay: float = 0.0,
               after_write: bool = False) -> None:
        """Answer the next `times` matching requests (-1: forever) with `status`/`body`/`headers`.

        `path_regex` is re.search'ed against the raw (percent-encoded) path without any /rest prefix
        or query string; method "*" matches any. delay: sleep before answering. after_write: run
        the real handler first (the write happens), then answer with the fault. status None: answer
        normally (use with delay). A str/bytes body is sent raw; None gives an error envelope."""
        fault = Fault(method.upper(), re.compile(path_regex), status, times, body, headers or {}, delay,
                      after_write)
        with self._app.log_lock:
            self._app.faults.append(fault)

    def inject_random(self, rate: float, seed: int = 0, kinds: tuple[str, ...] | None = None) -> None:
        """From now on, answer a share `rate` of requests with a random transient fault, seeded:
        500 (before or after the write happens), 502, 503, 429, or a connection reset (before or
        after the write). `kinds` narrows them (see server.TRANSIENT_KINDS). rate 0 turns it off.
        `random_faults_injected` counts what was injected, by kind."""
        with self._app.log_lock:
            self._app.chaos = Chaos(rate, seed, kinds or TRANSIENT_KINDS) if rate > 0 else None

    @property
    def random_faults_injected(self) -> dict[str, int]:
        chaos = self._app.chaos
        return dict(chaos.injected) if chaos is not None else {}

    def clear_faults(self) -> None:
        with self._app.log_lock:
            self._app.faults.clear()
            self._app.chaos = None


def _wire(obj):
    """A deep copy in JSON wire shape; int dict keys (ids) are kept as ints."""
    if isinstance(obj, dict) and all(isinstance(k, int) for k in obj):
        return {k: json.loads(dumps(v)) for k, v in obj.items()}
    return json.loads(dumps(obj))
