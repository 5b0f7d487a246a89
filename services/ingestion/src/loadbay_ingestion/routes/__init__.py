"""The ingestion HTTP API, one router per resource: connections, bindings (with schedules)
and runs."""

from fastapi import APIRouter

from loadbay_ingestion.routes import bindings, connections, runs

ROUTERS: tuple[APIRouter, ...] = (connections.router, bindings.router, runs.router)
