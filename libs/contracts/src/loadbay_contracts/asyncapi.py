"""The AsyncAPI 2.6 document of loadbay's events, generated from the contracts themselves."""

from __future__ import annotations

from typing import Any

from loadbay_contracts.envelope import Envelope, dead_letter_topic
from loadbay_contracts.registry import EVENT_TYPES

PRODUCERS = {
    "file.landed": "upstream ETL; ingestion; reload (translated S3 notifications, watcher)",
    "reload.requested": "reload",
    "reload.rejected": "reload",
    "reload.finished": "reload",
    "reload.loaded": "loader",
    "workspace.load.requested": "distribution",
    "workspace.load.completed": "loader",
    "distribution.finished": "distribution",
    "ingestion.finished": "ingestion",
    "graph.load.finished": "loader",
}


def asyncapi_document() -> dict[str, Any]:
    envelope = Envelope.model_json_schema()
    envelope["properties"].pop("data", None)
    channels: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Envelope": envelope}
    for event_type, cls in sorted(EVENT_TYPES.items()):
        data = cls.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in data.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[cls.__name__] = data
        channels[cls.topic()] = {
            "description": f"{(cls.__doc__ or '').strip()} Dead letters: "
            f"{dead_letter_topic(cls.topic())}. Produced by: {PRODUCERS.get(event_type, '?')}.",
            "subscribe": {
                "operationId": f"on_{event_type.replace('.', '_')}",
                "message": {
                    "name": event_type,
                    "title": cls.__name__,
                    "contentType": "application/json",
                    "bindings": {
                        "kafka": {"key": {"type": "string", "description": "the ordering key"}}
                    },
                    "payload": {
                        "allOf": [
                            {"$ref": "#/components/schemas/Envelope"},
                            {
                                "type": "object",
                                "properties": {
                                    "type": {"const": event_type},
                                    "schemaversion": {"const": cls.VERSION},
                                    "data": {"$ref": f"#/components/schemas/{cls.__name__}"},
                                },
                            },
                        ]
                    },
                },
            },
        }
    return {
        "asyncapi": "2.6.0",
        "info": {
            "title": "loadbay events",
            "version": "1.0.0",
            "description": "CloudEvents 1.0 in structured mode: the Kafka value is the JSON"
            " envelope, the key is the ordering key. A consumer rejects an unknown major"
            " `schemaversion` to `<topic>.dlq`.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "embedded": {"url": "127.0.0.1:9092", "protocol": "kafka"},
        },
        "channels": channels,
        "components": {"schemas": schemas},
    }
