"""AWS regions a connection's bucket may be in, and the opt-in rule of the seed."""

from __future__ import annotations

from collections.abc import Collection

# Commercial, GovCloud and China partitions (botocore's endpoint data, 2025).
KNOWN_REGIONS = frozenset({
    "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
    "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
    "ap-southeast-4", "ap-southeast-5", "ap-southeast-7", "ca-central-1", "ca-west-1",
    "cn-north-1", "cn-northwest-1", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1",
    "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1",
    "me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2", "us-gov-east-1",
    "us-gov-west-1", "us-west-1", "us-west-2",
})  # fmt: skip
# The opt-in regions the Amorphic seed names: ingestion from them needs them enabled in
# loadbay's settings (LOADBAY_INGESTION_ENABLED_OPT_IN_REGIONS).
OPT_IN_REGIONS = frozenset({"eu-south-1", "af-south-1", "me-south-1", "ap-east-1"})


def check_known(region: str) -> str:
    if region not in KNOWN_REGIONS:
        raise ValueError(
            f"unknown AWS region {region!r}; expected one of {', '.join(sorted(KNOWN_REGIONS))}"
        )
    return region


def opt_in_problem(region: str, enabled: Collection[str]) -> str | None:
    """Why ingestion from `region` cannot run, or None when it can."""
    if region in OPT_IN_REGIONS and region not in enabled:
        return (
            f"region {region} is an opt-in region that is not enabled in loadbay: add it to"
            " LOADBAY_INGESTION_ENABLED_OPT_IN_REGIONS"
        )
    return None
