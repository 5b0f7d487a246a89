"""Policy documents for `bucket_policy` connections: the user attaches them to the remote
bucket (and its KMS key), granting loadbay's principal exactly the read access it needs."""

from __future__ import annotations

from typing import Any


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
