"""Data products (distribution): each product's client workspaces with their LSTS and failure
counts per dataset, its runs with their problems, and Run now."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from loadbay_console.backend import BackendError, seg
from loadbay_console.web import Api, Form, back_with, render

router = APIRouter()


@router.get("/products")
async def list_products(request: Request, api: Api) -> Response:
    products = await api.get("distribution", "/data-products")
    return render(request, "products.html", nav="products", products=products)


@router.get("/products/{name}")
async def show_product(request: Request, api: Api, name: str) -> Response:
    path = f"/data-products/{seg(name)}"
    product, workspaces, datasets, runs = await asyncio.gather(
        api.get("distribution", path),
        api.get("distribution", path + "/workspaces"),
        api.get("distribution", path + "/datasets"),
        api.get("distribution", path + "/runs", limit=20),
    )
    return render(
        request,
        "product.html",
        nav="products",
        product=product,
        workspaces=workspaces,
        datasets=datasets,
        runs=runs,
        running=[r for r in runs if r["status"] == "running"],
    )


@router.post("/products/{name}/run")
async def run_now(request: Request, api: Api, form: Form, name: str) -> Response:
    back = f"/products/{seg(name)}"
    try:
        started = await api.post("distribution", f"/data-products/{seg(name)}/runs")
    except BackendError as exc:
        if exc.status >= 500:
            raise
        return back_with(request, back, "error", exc.message)
    return back_with(request, f"/products/runs/{seg(started['run_id'])}", "ok", "Run started.")


@router.get("/products/runs/{run_id}")
async def show_run(request: Request, api: Api, run_id: str) -> Response:
    run = await api.get("distribution", f"/runs/{seg(run_id)}")
    return render(request, "product_run.html", nav="products", run=run)
