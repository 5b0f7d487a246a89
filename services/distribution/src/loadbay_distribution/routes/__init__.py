"""The distribution HTTP API, one router per resource: data products (with segments),
workspaces, datasets and runs (with the schedule)."""

from fastapi import APIRouter

from loadbay_distribution.routes import datasets, products, runs, workspaces

ROUTERS: tuple[APIRouter, ...] = (products.router, workspaces.router, datasets.router, runs.router)
