"""The reload HTTP API, one router per resource: datasets, their files (upload, pending,
Process Files, delete) and executions."""

from fastapi import APIRouter

from loadbay_reload.routes import datasets, executions, files

ROUTERS: tuple[APIRouter, ...] = (datasets.router, files.router, executions.router)
