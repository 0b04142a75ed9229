"""What a run decides to change, as plain data, and what became of each change.

The planner (modules/planner.py) returns a `Plan` of these changes without
writing anything; the applier (modules/applier.py) executes them phase by
phase and returns one `Result` per change. `--dry-run` prints the plan (modules/plan_view.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from modules.scopes import Connection, ScopeRef


class Outcome(StrEnum):
    """What happened to one change."""

    CREATED = "created"      # the write was made
    UPDATED = "updated"      # an existing object was changed
    UNCHANGED = "unchanged"  # nothing to do after all (e.g. DevLake says the pipeline already runs)
    ADOPTED = "adopted"      # an ambiguous POST had in fact succeeded: read back and taken as ours
    DEFERRED = "deferred"    # left for its cron minute or a later run: DevLake's queue is full
    SKIPPED = "skipped"      # not attempted: a change it depends on failed, or the run was stopped
    FAILED = "failed"        # still failing after its bounded attempts


class Phase(IntEnum):
    """Order of application: each phase may use what the earlier ones created."""

    SCOPE_CONFIGS = 1
    SCOPES = 2
    PROJECTS = 3
    BLUEPRINTS = 4
    COLLECTION = 5  # triggers and reruns, last: they need connected blueprints


@dataclass(frozen=True, eq=False)
class CreateScopeConfig:
    """POST .../scope-configs; reconciled by name (`docs/devlake-api.md` §0 #24)."""

    connection: Connection
    body: dict
    kind = "scope_config"
    phase = Phase.SCOPE_CONFIGS

    @property
    def target(self) -> str:
        return f"{self.connection.label} {self.body['name']}"

    def describe(self) -> str:
        return "create, entities=" + ",".join(self.body.get("entities") or [])


@dataclass(frozen=True, eq=False)
class PutScopes:
    """PUT .../scopes with up to 200 rows (an idempotent upsert, §0 #5).

    `scope_config`: the id of the connection's scope config, or the CreateScopeConfig of this
    plan that creates it (the applier resolves it, `Applier.resolve`), or None (none known).
    """

    connection: Connection
    rows: tuple[dict, ...]
    scope_ids: tuple[str, ...]
    action: str  # "create" (new scopes) or "attach_scope_config" (existing rows, re-sent whole)
    scope_config: int | CreateScopeConfig | None = None
    kind = "scope"
    phase = Phase.SCOPES

    @property
    def target(self) -> str:
        return f"{self.connection.label} {len(self.rows)} scope(s) {self.scope_ids[0]}…"

    def describe(self) -> str:
        return self.action


@dataclass(frozen=True, eq=False)
class CreateProject:
    """POST /projects (DevLake creates its blueprint), then PATCH that blueprint with `blueprint`."""

    scope: ScopeRef
    name: str
    description: str  # carries the marker that lets a later run recognise the project
    metrics: tuple[str, ...]
    blueprint: dict   # absolute field values for the auto-created blueprint
    # the PutScopes of this plan that adds the scope itself, if any: the project is skipped if it fails
    scope_added_by: PutScopes | None = None
    kind = "project"
    phase = Phase.PROJECTS

    @property
    def target(self) -> str:
        return self.name

    def describe(self) -> str:
        cron = f", cron {self.blueprint['cronConfig']}" if "cronConfig" in self.blueprint else ""
        return f"create, {self.scope.connection.label} scope {self.scope.scope_id}{cron}"


@dataclass(frozen=True, eq=False)
class PatchBlueprint:
    """PATCH /blueprints/{id} with absolute values (safe to repeat); `before` is what was observed."""

    blueprint_id: int
    project: str
    fields: dict
    before: dict = field(default_factory=dict)
    lifecycle: str = ""  # mark / retire / restore (modules/lifecycle.py), with its date if any
    kind = "blueprint"
    phase = Phase.BLUEPRINTS

    @property
    def target(self) -> str:
        return self.project

    @property
    def lifecycle_action(self) -> str:
        return self.lifecycle.split(" ", 1)[0]

    def describe(self) -> str:
        # labels and isManual follow the cron (modules/cron_slots.py) or the lifecycle: those say it all
        changed = ", ".join(f"{k}: {self.before.get(k)!r} -> {v!r}" for k, v in sorted(self.fields.items())
                            if k not in ("connections", "labels", "isManual"))
        return ", ".join(p for p in (self.lifecycle, changed) if p) or "set fields"


@dataclass(frozen=True, eq=False)
class TriggerBlueprint:
    """POST /blueprints/{id}/trigger; `blueprint`: its id, or the CreateProject of this plan that
    creates it (the applier resolves it, `Applier.resolve`)."""

    project: str
    blueprint: int | CreateProject
    kind = "trigger"
    phase = Phase.COLLECTION

    @property
    def target(self) -> str:
        return self.project

    @property
    def new(self) -> bool:
        """The blueprint is created by this run: its id is not known when planning."""
        return not isinstance(self.blueprint, int)

    def describe(self) -> str:
        return f"trigger blueprint {'(new)' if self.new else self.blueprint}"


@dataclass(frozen=True, eq=False)
class RerunPipeline:
    """POST /pipelines/{id}/rerun of a managed project's failed latest pipeline."""

    project: str
    pipeline_id: int
    blueprint_id: int | None = None
    kind = "rerun"
    phase = Phase.COLLECTION

    @property
    def target(self) -> str:
        return self.project

    def describe(self) -> str:
        return f"rerun pipeline {self.pipeline_id}"


# A change that needs what another change of the same plan creates names that change in a field
# (PutScopes.scope_config, CreateProject.scope_added_by, TriggerBlueprint.blueprint): phases order
# them, so the named change is always of an earlier phase, and `Applier.resolve` reads its result.
Change = CreateScopeConfig | PutScopes | CreateProject | PatchBlueprint | TriggerBlueprint | RerunPipeline
CollectionChange = TriggerBlueprint | RerunPipeline  # what MAX_PENDING_PIPELINES bounds


def items_of(change: Change) -> int:
    """How many items a change stands for in the counts: one per scope row, else one."""
    return len(change.rows) if isinstance(change, PutScopes) else 1


@dataclass
class Plan:
    """Everything a run would change, plus what it found nothing to do for and could not plan."""

    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)          # items that could not be planned
    warnings: list[tuple[str, dict]] = field(default_factory=list)  # (event, fields) to log
    refused: int = 0  # missing scopes not marked: their connection's mass absence was refused


@dataclass(frozen=True)
class Result:
    """What became of one change. `value` is what DevLake answered (e.g. the created object)."""

    change: Change
    outcome: Outcome
    error: str | None = None
    status: int | None = None
    value: object = None

    @property
    def items(self) -> int:
        return items_of(self.change)
