"""Managed scopes that vanish upstream: mark them, retire them after a grace period, restore them.

Pure: the planner passes the managed blueprints and connection views it read, RETIRE_MISSING_AFTER_DAYS
and the run's local date, and gets back one label/enable decision per blueprint to change.

The state lives in DevLake alone, as blueprint labels an operator sees in config-ui (a lost state
directory changes nothing): `devlake-automation/missing-since:YYYY-MM-DD` and
`devlake-automation/retired`. Retiring disables the blueprint (`enable: false`); nothing is ever
deleted. Only a complete listing (every page read, no error, not cut by DevLake) can prove a scope
absent, and a connection that loses many scopes at once (a token that lost an org's access looks
exactly like mass deletion) has nothing marked or retired in that run.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from modules.observe import ConnectionView
from modules.plugins import plugin_of

MISSING_LABEL_PREFIX = "devlake-automation/missing-since:"
RETIRED_LABEL = "devlake-automation/retired"
MASS_ABSENCE_SHARE = 0.25  # more than this share of a connection's managed scopes missing at once...
MASS_ABSENCE_MIN = 5       # ...and more than this many: refused

MARK, RETIRE, RESTORE = "mark", "retire", "restore"


@dataclass(frozen=True)
class LifecycleChange:
    """The lifecycle labels a blueprint gets (other labels kept) and, if not None, its new `enable`."""

    blueprint_id: int
    project: str
    action: str  # MARK, RETIRE or RESTORE
    missing_since: date | None
    enable: bool | None = None

    def relabel(self, labels: Iterable[str]) -> list[str]:
        """`labels` without the lifecycle labels, plus those of the new state (labels are replaced
        whole by PATCH, `docs/devlake-api.md` §8.2, so an operator's labels are sent back)."""
        kept = [label for label in labels if not is_lifecycle_label(label)]
        if self.action in (MARK, RETIRE) and self.missing_since is not None:
            kept.append(missing_label(self.missing_since))
        if self.action == RETIRE:
            kept.append(RETIRED_LABEL)
        return kept

    def describe(self) -> str:
        since = f" (missing since {self.missing_since.isoformat()})" if self.missing_since else ""
        return f"{self.action}{since}"


@dataclass(frozen=True)
class Refusal:
    """A connection whose mass absence was refused in this run."""

    connection: str
    missing: int
    managed: int


@dataclass
class Lifecycle:
    changes: dict[int, LifecycleChange] = field(default_factory=dict)
    retired: set[int] = field(default_factory=set)  # left alone: no trigger, rerun, timeAfter or cron
    refusals: list[Refusal] = field(default_factory=list)

    @property
    def refused(self) -> int:
        return sum(r.missing for r in self.refusals)


def missing_label(day: date) -> str:
    return MISSING_LABEL_PREFIX + day.isoformat()


def is_lifecycle_label(label: str) -> bool:
    return label == RETIRED_LABEL or label.startswith(MISSING_LABEL_PREFIX)


def missing_since(labels: Iterable[str] | None) -> date | None:
    """The date of the blueprint's missing mark; a malformed one counts as no mark."""
    for label in labels or ():
        if label.startswith(MISSING_LABEL_PREFIX):
            try:
                return date.fromisoformat(label[len(MISSING_LABEL_PREFIX):])
            except ValueError:
                return None
    return None


def is_retired(bp: dict) -> bool:
    """Retired by the daemon: disabled and labelled (disabled by hand alone is not retired)."""
    return bp.get("enable") is False and RETIRED_LABEL in (bp.get("labels") or [])


def complete(view: ConnectionView) -> bool:
    """Whether the listing can prove a scope absent: read whole, not cut by DevLake, and no other
    read of that connection failed (its scope list or scope configs): a connection DevLake
    answered only in part this run proves nothing."""
    return (view.remote is not None and view.existing is not None and view.scope_configs is not None
            and not view.remote.capped_groups
            and not plugin_of(view.connection.plugin).partial_listing)


def scope_keys(bp: dict) -> set[tuple[str, int, str]]:
    return {(c.get("pluginName"), c.get("connectionId"), str(s.get("scopeId")))
            for c in bp.get("connections") or [] for s in c.get("scopes") or []}


def plan_lifecycle(blueprints: list[dict], views: list[ConnectionView], after_days: int | None,
                   today: date) -> Lifecycle:
    """One decision per managed blueprint whose lifecycle labels or `enable` must change.

    `after_days` None (`off`) neither marks nor retires; restoring still happens, so that labels
    of an earlier setting never outlive their scope's return.
    """
    listed = {(v.connection.plugin, v.connection.id, sid) for v in views if v.remote is not None
              for sid in v.remote.scopes}
    whole = {(v.connection.plugin, v.connection.id): v.connection.label for v in views if complete(v)}
    result = Lifecycle()
    missing: list[dict] = []
    for bp in blueprints:
        keys = scope_keys(bp)
        if keys & listed:
            _restore(bp, result)
        elif keys and all(k[:2] in whole for k in keys):
            missing.append(bp)
        elif is_retired(bp):
            result.retired.add(bp["id"])  # cannot tell: stays as it is
    refused = _refused_connections(blueprints, missing, whole, result)
    for bp in missing:
        if any(k[:2] in refused for k in scope_keys(bp)):
            if is_retired(bp):
                result.retired.add(bp["id"])
            continue
        _missing(bp, after_days, today, result)
    return result


def _restore(bp: dict, result: Lifecycle) -> None:
    labels = bp.get("labels") or []
    if not any(is_lifecycle_label(label) for label in labels):
        return
    # only the daemon's own retirement is undone: a blueprint disabled by hand stays disabled
    enable = True if is_retired(bp) else None
    result.changes[bp["id"]] = LifecycleChange(bp["id"], _name(bp), RESTORE, None, enable)


def _missing(bp: dict, after_days: int | None, today: date, result: Lifecycle) -> None:
    if is_retired(bp):
        result.retired.add(bp["id"])
        return
    if after_days is None:
        return
    marked = missing_since(bp.get("labels"))
    since = marked or today
    # a blueprint already disabled by hand is out of the schedule: labelling it retired would make
    # the daemon enable it when its scope returns
    if (today - since).days >= after_days and bp.get("enable") is not False:
        result.changes[bp["id"]] = LifecycleChange(bp["id"], _name(bp), RETIRE, since, False)
        result.retired.add(bp["id"])
    elif marked is None:
        result.changes[bp["id"]] = LifecycleChange(bp["id"], _name(bp), MARK, since)


def _refused_connections(blueprints: list[dict], missing: list[dict], whole: dict[tuple, str],
                         result: Lifecycle) -> set[tuple]:
    """Connections where more than 25 % (and more than 5) of the managed scopes not yet retired
    are missing in this run."""
    def per_connection(bps: Iterable[dict]) -> dict[tuple, int]:
        counts: dict[tuple, int] = {}
        for bp in bps:
            if not is_retired(bp):
                for conn in {k[:2] for k in scope_keys(bp)}:
                    counts[conn] = counts.get(conn, 0) + 1
        return counts

    managed, absent = per_connection(blueprints), per_connection(missing)
    refused = set()
    for conn, n in sorted(absent.items()):
        if n > MASS_ABSENCE_MIN and n > MASS_ABSENCE_SHARE * managed[conn]:
            refused.add(conn)
            result.refusals.append(Refusal(whole[conn], n, managed[conn]))
    return refused


def _name(bp: dict) -> str:
    return str(bp.get("projectName") or bp.get("name"))
