"""What a route asks FastAPI for, besides its parameters: the service's resources and pool.

Routes live in module-level routers (one per resource) and declare what they need with these
annotations. The caller is `loadbay_platform.auth.CurrentPrincipal`.
"""

from __future__ import annotations

from typing import Annotated, cast

import asyncpg
from fastapi import Depends, Request

from loadbay_platform.s3 import ObjectStore
from loadbay_platform.service import Resources


def _resources(request: Request) -> Resources:
    return cast(Resources, request.app.state.resources)


def _pool(request: Request) -> asyncpg.Pool:
    return _resources(request).pool


def _object_store(request: Request) -> ObjectStore:
    return _resources(request).s3


ServiceResources = Annotated[Resources, Depends(_resources)]
DbPool = Annotated[asyncpg.Pool, Depends(_pool)]
ObjectStorage = Annotated[ObjectStore, Depends(_object_store)]
