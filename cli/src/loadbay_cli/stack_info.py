"""Where a running embedded stack's servers listen and how to log in (`StackInfo`), and the
fixed credentials and names the stack uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

S3_ACCESS_KEY_ID = "loadbay"
S3_SECRET_ACCESS_KEY = "loadbay-secret"
S3_REGION = "us-east-1"
DEFAULT_LZ_BUCKET = "loadbay-lz"
DEFAULT_DLZ_BUCKET = "loadbay-dlz"
DEFAULT_KAFKA_BUCKET = "loadbay-kafka"
DEFAULT_DATABASE = "loadbay"


@dataclass(frozen=True)
class StackInfo:
    """Where the servers of a running `EmbeddedStack` listen, and how to log in."""

    kafka_bootstrap_servers: str
    postgres_url: str  # asyncpg/libpq URL of database `loadbay`, over the unix socket
    postgres_tcp_url: str  # the same database on 127.0.0.1:<port>, for any SQL client
    s3_endpoint_url: str
    s3_access_key_id: str
    s3_secret_access_key: str
    s3_region: str
    lz_bucket: str
    dlz_bucket: str
    smtp_host: str
    smtp_port: int
    maildir: str

    def to_json_dict(self, services: dict[str, str], token: str) -> dict[str, Any]:
        """The JSON document ``loadbay dev`` prints and writes: servers, services and token."""
        return {
            "kafka": {"bootstrap_servers": self.kafka_bootstrap_servers},
            "postgres": {"url": self.postgres_tcp_url, "socket_url": self.postgres_url},
            "s3": {
                "endpoint_url": self.s3_endpoint_url,
                "access_key_id": self.s3_access_key_id,
                "secret_access_key": self.s3_secret_access_key,
                "region": self.s3_region,
                "lz_bucket": self.lz_bucket,
                "dlz_bucket": self.dlz_bucket,
            },
            "smtp": {"host": self.smtp_host, "port": self.smtp_port, "maildir": self.maildir},
            "services": dict(services),
            "token": token,
        }

    def service_env(self) -> dict[str, str]:
        """Environment variables (pydantic-settings names) that point a service at this stack."""
        return {
            "LOADBAY_KAFKA__BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "LOADBAY_POSTGRES__URL": self.postgres_url,
            "LOADBAY_S3__ENDPOINT_URL": self.s3_endpoint_url,
            "LOADBAY_S3__ACCESS_KEY_ID": self.s3_access_key_id,
            "LOADBAY_S3__SECRET_ACCESS_KEY": self.s3_secret_access_key,
            "LOADBAY_S3__REGION": self.s3_region,
            "LOADBAY_S3__LZ_BUCKET": self.lz_bucket,
            "LOADBAY_S3__DLZ_BUCKET": self.dlz_bucket,
            "LOADBAY_SMTP__HOST": self.smtp_host,
            "LOADBAY_SMTP__PORT": str(self.smtp_port),
            "LOADBAY_DEV_MODE": "true",
        }
