"""A Neptune `POST /loader` request: every field, its defaults, and the forms Neptune accepts
("TRUE"/"FALSE" strings as well as booleans; a JSON body or URL-encoded parameters)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, get_args
from urllib.parse import unquote, urlparse

from loadbay_loader.graph.errors import InvalidParameter, MissingParameter
from loadbay_loader.graph.feeds import DEFAULT_BASE_URI, DEFAULT_NAMED_GRAPH, Format, LoadOptions

FORMATS: tuple[str, ...] = get_args(Format)
MODES = ("RESUME", "NEW", "AUTO")
PARALLELISM = ("LOW", "MEDIUM", "HIGH", "OVERSUBSCRIBE")
REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
    "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "me-south-1",
    "af-south-1", "ap-east-1", "ap-northeast-1", "ap-northeast-2", "ap-southeast-1",
    "ap-southeast-2", "ap-south-1", "cn-north-1", "cn-northwest-1", "us-gov-west-1",
    "us-gov-east-1",
)  # fmt: skip
PARSER_KEYS = ("namedGraphUri", "baseUri", "allowEmptyStrings")
KNOWN_FIELDS = {
    "source", "format", "iamRoleArn", "mode", "failOnError", "parallelism",
    "parserConfiguration", "queueRequest", "dependencies", "region",
    "updateSingleCardinalityProperties", "userProvidedEdgeIds", "edgeOnlyLoad",
    "accessKey", "secretKey",
}  # fmt: skip
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_HTTPS_SOURCE = re.compile(r"^s3(?:[.-]([a-z0-9-]+))?\.amazonaws\.com(?:\.cn)?$")


@dataclass(frozen=True)
class LoadRequest:
    source: str
    bucket: str
    prefix: str
    format: str
    iam_role_arn: str
    region: str
    mode: str = "AUTO"
    fail_on_error: bool = True
    parallelism: str = "HIGH"
    named_graph_uri: str = DEFAULT_NAMED_GRAPH
    base_uri: str = DEFAULT_BASE_URI
    allow_empty_strings: bool = False
    queue_request: bool = False
    dependencies: tuple[str, ...] = ()
    update_single_cardinality_properties: bool = False
    user_provided_edge_ids: bool | None = None
    edge_only_load: bool = False
    parser_configuration: dict[str, Any] = field(default_factory=dict)

    def options(self) -> LoadOptions:
        return LoadOptions(
            format=self.format,  # type: ignore[arg-type]
            fail_on_error=self.fail_on_error,
            update_single_cardinality_properties=self.update_single_cardinality_properties,
            allow_empty_strings=self.allow_empty_strings,
            user_provided_edge_ids=self.user_provided_edge_ids,
            named_graph_uri=self.named_graph_uri,
            base_uri=self.base_uri,
        )


def parse_bool(name: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().upper() in ("TRUE", "FALSE"):
        return value.strip().upper() == "TRUE"
    raise InvalidParameter(f'Invalid value for {name}: {value!r}. Allowed values: "TRUE", "FALSE"')


def _choice(name: str, value: Any, allowed: tuple[str, ...] | list[str], default: str) -> str:
    if value is None:
        return default
    if isinstance(value, str) and value.upper() in allowed:
        return value.upper()
    raise InvalidParameter(
        f"Invalid value for {name}: {value!r}. Allowed values: {', '.join(allowed)}"
    )


def parse_source(source: str) -> tuple[str, str]:
    """(bucket, prefix) of the three URI forms Neptune accepts."""
    parsed = urlparse(source)
    if parsed.scheme == "s3" and parsed.netloc:
        return parsed.netloc, unquote(parsed.path.lstrip("/"))
    if parsed.scheme == "https" and _HTTPS_SOURCE.match(parsed.netloc):
        bucket, _, key = parsed.path.lstrip("/").partition("/")
        if bucket:
            return bucket, unquote(key)
    raise InvalidParameter(
        f"Invalid source {source!r}: use s3://bucket/key, https://s3.amazonaws.com/bucket/key"
        " or https://s3.<region>.amazonaws.com/bucket/key"
    )


def _reject_nul(body: dict[str, Any]) -> None:
    """PostgreSQL text cannot hold NUL: refuse it in any key or value (walked without recursion,
    the body may nest as deep as the JSON parser allowed)."""
    pending: list[Any] = [body]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str) and "\x00" in value:
            raise InvalidParameter("The request contains a NUL character (\\u0000 or %00)")


def parse_request(body: dict[str, Any]) -> LoadRequest:
    _reject_nul(body)
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        raise InvalidParameter(f"Unknown parameter(s): {', '.join(unknown)}")
    for name in ("source", "format", "iamRoleArn", "region"):
        value = body.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise MissingParameter(name)
        if not isinstance(value, str):
            raise InvalidParameter(f"Invalid value for {name}: expected a string")
    bucket, prefix = parse_source(body["source"])
    fmt = body["format"]
    if fmt not in FORMATS:
        raise InvalidParameter(f"Invalid format {fmt!r}. Allowed values: {', '.join(FORMATS)}")
    roles = [r.strip() for r in body["iamRoleArn"].split(",")]
    bad = [r for r in roles if not ROLE_ARN.match(r)]
    if bad:
        raise InvalidParameter(
            f"Invalid iamRoleArn {bad[0]!r}: expected arn:aws:iam::<12-digit account>:role/<name>"
            " (a comma-separated chain of such ARNs for cross-account access)"
        )
    region = body["region"].strip().lower()
    if region not in REGIONS:
        raise InvalidParameter(
            f"Invalid value for region: {body['region']!r}. Allowed values: {', '.join(REGIONS)}"
        )
    parser = body.get("parserConfiguration") or {}
    if isinstance(parser, str):  # URL-encoded requests carry it as JSON text
        try:
            parser = json.loads(parser)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise InvalidParameter(f"parserConfiguration is not a JSON object: {exc}") from exc
    if not isinstance(parser, dict):
        raise InvalidParameter("parserConfiguration must be an object of string values")
    _reject_nul(parser)  # URL-encoded, it was JSON text until now
    unknown_parser = sorted(set(parser) - set(PARSER_KEYS))
    if unknown_parser:
        raise InvalidParameter(
            f"Unknown parserConfiguration key(s): {', '.join(unknown_parser)};"
            f" allowed: {', '.join(PARSER_KEYS)}"
        )
    dependencies = body.get("dependencies") or []
    if isinstance(dependencies, str):
        dependencies = [d for d in dependencies.split(",") if d]
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise InvalidParameter("dependencies must be a list of load ids")
    update_single = parse_bool(
        "updateSingleCardinalityProperties", body.get("updateSingleCardinalityProperties"), False
    )
    if update_single and fmt == "opencypher":
        raise InvalidParameter(
            "updateSingleCardinalityProperties is not supported for openCypher data"
        )
    edge_ids = body.get("userProvidedEdgeIds")
    return LoadRequest(
        source=body["source"],
        bucket=bucket,
        prefix=prefix,
        format=fmt,
        iam_role_arn=body["iamRoleArn"],
        region=region,
        mode=_choice("mode", body.get("mode"), MODES, "AUTO"),
        fail_on_error=parse_bool("failOnError", body.get("failOnError"), True),
        parallelism=_choice("parallelism", body.get("parallelism"), PARALLELISM, "HIGH"),
        named_graph_uri=str(parser.get("namedGraphUri") or DEFAULT_NAMED_GRAPH),
        base_uri=str(parser.get("baseUri") or DEFAULT_BASE_URI),
        allow_empty_strings=parse_bool("allowEmptyStrings", parser.get("allowEmptyStrings"), False),
        queue_request=parse_bool("queueRequest", body.get("queueRequest"), False),
        dependencies=tuple(dependencies),
        update_single_cardinality_properties=update_single,
        user_provided_edge_ids=None
        if edge_ids is None
        else parse_bool("userProvidedEdgeIds", edge_ids, True),
        edge_only_load=parse_bool("edgeOnlyLoad", body.get("edgeOnlyLoad"), False),
        parser_configuration=dict(parser),
    )


def threads_for(parallelism: str, vcpus: int) -> int:
    """Worker concurrency as Neptune defines it: LOW vCPU/8, MEDIUM vCPU/2, HIGH vCPU,
    OVERSUBSCRIBE vCPU x 2 (at least one)."""
    return max(1, {"LOW": vcpus // 8, "MEDIUM": vcpus // 2, "HIGH": vcpus,
                   "OVERSUBSCRIBE": vcpus * 2}[parallelism])  # fmt: skip
