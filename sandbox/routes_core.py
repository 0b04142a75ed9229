"""Framework, project, blueprint and pipeline routes (§1.4, §7, §8, §9 of `docs/devlake-api.md`).

Handlers take (state, request) and return (status, object) or a Response.
"""

from __future__ import annotations

from .common import SUCCESS_BODY, ApiError, paginate, query_int
from .router import Response, Router

router = Router()
VERSION = "v1.0.3-fake"


def _ready_body(message: str) -> dict:
    return {**SUCCESS_BODY, "message": message}


@router.route("GET", "/ping")
def ping(state, req):
    return Response(200, b"", "text/plain")


@router.route("GET", "/ready")
def ready(state, req):
    return 200, _ready_body("ready")


@router.route("GET", "/health")
def health(state, req):
    return 200, _ready_body("good")


@router.route("GET", "/version")
def version(state, req):
    return 200, {"version": VERSION}


@router.route("GET", "/proceed-db-migration")
def proceed_db_migration(state, req):
    return 200, SUCCESS_BODY


@router.route("GET", "/plugins")
def list_plugins(state, req):
    return 200, state.plugins.plugin_list()


# --- projects (§7) ------------------------------------------------------------------------------

@router.route("GET", "/projects")
def list_projects(state, req):
    # GET /projects reports errors through ApiOutputAbort: status only, empty body (§1.3)
    page = query_int(req.query, "page", 1, empty_body=True)
    size = query_int(req.query, "pageSize", 50, empty_body=True)
    offset, limit = paginate(page, size)
    return 200, state.projects.list_projects(req.query.get("keyword", ""), offset, limit)


@router.route("POST", "/projects")
def create_project(state, req):
    return 201, state.projects.create_project(req.json())


@router.route("GET", "/projects/:name")
def get_project(state, req):
    return 200, state.projects.output(req.params["name"])


@router.route("GET", "/projects/:name/check")
def check_project(state, req):
    return 200, {"exist": req.params["name"] in state.projects.projects}


@router.route("PATCH", "/projects/:name")
def patch_project(state, req):
    return 201, state.projects.patch_project(req.params["name"], req.json())  # 201: quirk #9


@router.route("DELETE", "/projects/:name")
def delete_project(state, req):
    state.projects.delete_project(req.params["name"])
    return 200, SUCCESS_BODY


# --- blueprints (§8) ----------------------------------------------------------------------------

def _opt_bool(req, key: str, *, empty_body: bool = False) -> bool | None:
    raw = req.query.get(key)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1", "t"):
        return True
    if raw.lower() in ("false", "0", "f"):
        return False
    raise ApiError(400, f'strconv.ParseBool: parsing "{raw}": invalid syntax', empty=empty_body)


@router.route("GET", "/blueprints")
def list_blueprints(state, req):
    page = query_int(req.query, "page", 1, empty_body=True)
    size = query_int(req.query, "pageSize", 50, empty_body=True)
    offset, limit = paginate(page, size)
    return 200, state.projects.list_blueprints(
        enable=_opt_bool(req, "enable", empty_body=True), is_manual=_opt_bool(req, "isManual", empty_body=True),
        label=req.query.get("label", ""), kind=req.query.get("type", "").upper(), offset=offset, limit=limit)


@router.route("POST", "/blueprints")
def create_blueprint(state, req):
    return 201, state.projects.create_blueprint(req.json())


@router.route("GET", "/blueprints/:id")
def get_blueprint(state, req):
    return 200, state.projects.blueprint(req.params["id"])


@router.route("PATCH", "/blueprints/:id")
def patch_blueprint(state, req):
    return 200, state.projects.patch_blueprint(req.params["id"], req.json())


@router.route("DELETE", "/blueprints/:id")
def delete_blueprint(state, req):
    state.projects.delete_blueprint(req.params["id"])
    return 200, SUCCESS_BODY


@router.route("POST", "/blueprints/:id/trigger")
def trigger_blueprint(state, req):
    return 200, state.projects.trigger(req.params["id"], req.json(optional=True))


@router.route("GET", "/blueprints/:id/pipelines")
def blueprint_pipelines(state, req):
    bp = state.projects.blueprint(req.params["id"])
    return 200, _pipeline_page(state, req, bp["id"])


# --- pipelines (§9) -----------------------------------------------------------------------------

def _pipeline_page(state, req, blueprint_id: int) -> dict:
    page = query_int(req.query, "page", 1)
    size = query_int(req.query, "pageSize", 50)  # `pagesize` (swagger) is ignored: quirk #6
    offset, limit = paginate(page, size)
    count, items = state.pipelines.query(
        status=req.query.get("status", ""), pending=query_int(req.query, "pending", 0),
        blueprint_id=blueprint_id, label=req.query.get("label", ""), offset=offset, limit=limit)
    return {"count": count, "pipelines": items}


@router.route("GET", "/pipelines")
def list_pipelines(state, req):
    return 200, _pipeline_page(state, req, query_int(req.query, "blueprint_id", 0))


@router.route("POST", "/pipelines")
def create_pipeline(state, req):
    body = req.json()
    if not isinstance(body, dict) or not isinstance(body.get("plan"), list):
        raise ApiError(400, "invalid plan")
    labels = body.get("labels") if isinstance(body.get("labels"), list) else []
    return 201, state.pipelines.create(name=str(body.get("name") or ""), blueprint_id=0, plan=body["plan"],
                                       labels=labels, priority=int(body.get("priority") or 0))


@router.route("GET", "/pipelines/:id")
def get_pipeline(state, req):
    return 200, state.pipelines.get(req.params["id"])


@router.route("DELETE", "/pipelines/:id")
def cancel_pipeline(state, req):
    state.pipelines.cancel(req.params["id"])
    return 200, SUCCESS_BODY


@router.route("POST", "/pipelines/:id/rerun")
def rerun_pipeline(state, req):
    return 200, state.pipelines.rerun(req.params["id"])


@router.route("GET", "/pipelines/:id/tasks")
def pipeline_tasks(state, req):
    # 200 with "tasks": null for an unknown pipeline or one without tasks (§9.1)
    try:
        tasks = state.pipelines.latest_tasks(int(req.params["id"]))
    except ValueError:
        tasks = []
    return 200, {"tasks": tasks or None, "count": len(tasks)}
