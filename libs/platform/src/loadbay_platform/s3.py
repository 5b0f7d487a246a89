"""Object storage clients (aiobotocore), built from settings."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from loadbay_platform.settings import S3Settings


def s3_client(settings: S3Settings) -> AbstractAsyncContextManager[Any]:
    """An async context manager yielding an S3 client; open it once in the service lifespan."""
    secret = settings.secret_access_key.get_secret_value() if settings.secret_access_key else None
    return get_session().create_client(  # type: ignore[no-any-return]
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=secret,
        config=AioConfig(
            max_pool_connections=20,
            retries={"max_attempts": 5, "mode": "standard"},
            s3={"addressing_style": "path"},
        ),
    )
