"""Reads of what was loaded: a vertex, an edge, the graph's counts (`/graph/...`) and RDF
statements by subject (`/rdf/...`). Only the graph's users may read."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loadbay_loader.graph import rdf_store
from loadbay_loader.graph import read_store as graph_store
from loadbay_loader.graph.errors import MissingParameter, NeptuneError
from loadbay_loader.graph.routes.neptune import Api, Caller, positive_int, responses, text
from loadbay_loader.graph.values import json_element
from loadbay_platform.dependencies import DbPool

router = APIRouter(tags=["graph"])
_errors = responses(400, 403, 404)


class NotFoundInGraph(NeptuneError):
    code = "NotFoundException"
    http_status = 404


@router.get("/graph/vertices/{vertex_id}", responses=_errors)
async def get_vertex(
    vertex_id: str, request: Request, user: Caller, api: Api, pool: DbPool
) -> JSONResponse:
    """A vertex with its labels and properties (`idSpace` for openCypher id spaces). Values
    are JSON; a Date is GraphSON's `{"@type": "g:Date", "@value": <epoch ms>}`."""
    api.access.require_graph_user(user, "read the graph")
    id_space = text("idSpace", request.query_params.get("idSpace", ""))
    async with pool.acquire() as conn:
        found = await graph_store.get_vertex(conn, text("id", vertex_id), id_space)
    if found is None:
        raise NotFoundInGraph(f"no vertex with id {vertex_id!r}")
    return JSONResponse(json_element(found))


@router.get("/graph/edges/{edge_id}", responses=_errors)
async def get_edge(edge_id: str, user: Caller, api: Api, pool: DbPool) -> JSONResponse:
    """An edge with its label, endpoints and properties (values as for a vertex)."""
    api.access.require_graph_user(user, "read the graph")
    async with pool.acquire() as conn:
        found = await graph_store.get_edge(conn, text("id", edge_id))
    if found is None:
        raise NotFoundInGraph(f"no edge with id {edge_id!r}")
    return JSONResponse(json_element(found))


@router.get("/graph/summary", responses=responses(403))
async def graph_summary(user: Caller, api: Api, pool: DbPool) -> JSONResponse:
    """Vertex and edge counts, in all and by label."""
    api.access.require_graph_user(user, "read the graph")
    async with pool.acquire() as conn:
        totals = await graph_store.count_graph(conn)
        by_label = await graph_store.count_by_label(conn)
        quads = await rdf_store.count_quads(conn)
    return JSONResponse({**totals, "byLabel": by_label, "quads": quads})


@router.get("/rdf/statements", responses=responses(400, 403))
async def statements(request: Request, user: Caller, api: Api, pool: DbPool) -> JSONResponse:
    """RDF statements by subject (an N-Triples term, e.g. `<http://example.org/s>`)."""
    api.access.require_graph_user(user, "read the graph")
    params = request.query_params
    subject = params.get("subject")
    if not subject:
        raise MissingParameter("subject")
    graph = params.get("graph")
    limit = positive_int("limit", params.get("limit"), 1000, maximum=10_000)
    async with pool.acquire() as conn:
        found = await rdf_store.triples_by_subject(
            conn, text("subject", subject), graph and text("graph", graph), limit
        )
    return JSONResponse({"subject": subject, "statements": found})
