"""The console's pages, one module per product."""

from fastapi import APIRouter

from loadbay_console.pages import connections, datasets, home, loads, products

ROUTERS: tuple[APIRouter, ...] = (
    home.router,
    datasets.router,
    loads.router,
    connections.router,
    products.router,
)
