"""Policy documents for `bucket_policy` connections: the user attaches them to the remote
bucket (and its KMS key), granting loadbay's principal exactly the read access it needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadbay_ingestion.rows import Connection


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def bucket_policy(bucket: str, region: str, principal_arn: str) -> dict[str, Any]:
    """List the bucket and read its objects; nothing else (no writes, no ACLs)."""
    arn = f"arn:{_partition(region)}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "LoadbayIngestionList",
                "Effect": "Allow",
                "Principal": {"AWS": principal_arn},
                "Action": "s3:ListBucket",
                "Resource": arn,
            },
            {
                "Sid": "LoadbayIngestionRead",
                "Effect": "Allow",
                "Principal": {"AWS": principal_arn},
                "Action": "s3:GetObject",
                "Resource": f"{arn}/*",
            },
        ],
    }


def kms_key_policy(region: str, principal_arn: str) -> dict[str, Any]:
    """A statement for the bucket's KMS key policy: decrypt, and only through S3 (reading the
    bucket's objects). `Resource: *` in a key policy means this key."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "LoadbayIngestionDecrypt",
                "Effect": "Allow",
                "Principal": {"AWS": principal_arn},
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
            }
        ],
    }


@dataclass(frozen=True)
class PolicyDocument:
    """A document a `bucket_policy` connection's owner downloads (`GET .../{path}`)."""

    path: str
    description: str
    # Why the connection has no such document (None when it has one).
    missing: Callable[[Connection], str | None]
    build: Callable[[Connection, str], dict[str, Any]]


def _why_no_bucket_policy(c: Connection) -> str | None:
    if c.access_type != "bucket_policy":
        return "uses access keys: it has no bucket policy"
    return None


def _why_no_kms_key_policy(c: Connection) -> str | None:
    if c.access_type != "bucket_policy" or not c.kms_key_arn:
        return (
            "has no KMS key policy: it applies to bucket_policy connections of a KMS-encrypted"
            " bucket (kms_key_arn)"
        )
    return None


DOCUMENTS = (
    PolicyDocument(
        path="bucket-policy",
        description="The bucket policy to attach to the remote bucket (bucket_policy connections).",
        missing=_why_no_bucket_policy,
        build=lambda c, principal_arn: bucket_policy(c.bucket, c.region, principal_arn),
    ),
    PolicyDocument(
        path="kms-key-policy",
        description="The KMS key policy statement for a KMS-encrypted bucket (bucket_policy"
        " connections).",
        missing=_why_no_kms_key_policy,
        build=lambda c, principal_arn: kms_key_policy(c.region, principal_arn),
    ),
)
