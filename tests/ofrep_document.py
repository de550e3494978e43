"""OFREP's OpenAPI document, as the tests read it: every constraint, no prose.

The source is the OpenFeature Remote Evaluation Protocol's own document,
``service/openapi.yaml`` of https://github.com/open-feature/protocol, version
0.3.0 (``info.version``) at commit ``d1a63a4e84e6297599ce566126e7764c1419f80a``
(the file last changed in ``9183895``, "implement ADR-0008 event stream
support"), under the Apache License 2.0 (Copyright The OpenFeature Authors).

This is a transcription, not a copy of the file: its paths, parameters,
request bodies, responses, headers and schemas, each with the same types,
enums, formats, bounds, ``required`` lists and ``oneOf``/``allOf``
structure, written out as Python; its descriptions, summaries, tags and
examples are left out, and so are the two schemas that carry nothing else
(``flagMetadataDescription``, ``flagMetadataExamples``). The document's two
faults are kept as they are, so that a test works around them where it
says so (tests/test_ofrep_schema.py: ``patched``). To move to a newer
version of the protocol, transcribe it anew and change the commit above.
"""

from __future__ import annotations

from typing import Any, Final

#: The version and commit of the document this is.
VERSION: Final = "0.3.0"
COMMIT: Final = "d1a63a4e84e6297599ce566126e7764c1419f80a"

SINGLE: Final = "/ofrep/v1/evaluate/flags/{key}"
BULK: Final = "/ofrep/v1/evaluate/flags"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _value(type_: str, **more: Any) -> dict[str, Any]:
    """One of the typed success shapes: an object whose ``value`` has that type."""
    return {
        "type": "object",
        "properties": {"value": {"type": type_, **more}},
        "required": ["value"],
    }


#: Seconds or an HTTP date, as the bulk operation's 429 has it.
_RETRY_AFTER_BULK: Final = {
    "oneOf": [
        {"type": "string", "format": "date-time"},
        {"type": "integer"},
    ]
}
#: ... and as the single one has it: a date only.
_RETRY_AFTER_SINGLE: Final = {"type": "string", "format": "date-time"}
_TIMESTAMP: Final = {
    "oneOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "format": "date-time"},
    ]
}


def _common_failures(
    retry_after: dict[str, Any],
) -> dict[str, Any]:
    """The 401, 403, 429 and 500 answers both operations document."""
    return {
        "401": {"description": "Unauthorized"},
        "403": {"description": "Forbidden"},
        "429": {
            "description": "Too Many Requests",
            "headers": {"Retry-After": {"schema": retry_after}},
        },
        "500": {
            "description": "Internal Server Error",
            **_json(_ref("generalErrorResponse")),
        },
    }


def _flag_metadata() -> dict[str, Any]:
    return {"allOf": [_ref("metadata")]}


DOCUMENT: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "servers": [{"url": "/"}],
    "info": {
        "version": VERSION,
        "title": "OpenFeature Remote Evaluation Protocol (OFREP)",
        "license": {"identifier": "Apache-2.0", "name": "Apache 2.0"},
    },
    "security": [{"ApiKeyAuth": []}, {"BearerAuth": []}],
    "paths": {
        SINGLE: {
            "post": {
                "operationId": "evaluateFlag",
                "parameters": [
                    {
                        "name": "key",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    **_json(_ref("evaluationRequest")),
                },
                "responses": {
                    "200": {
                        "description": "Successful flag evaluation",
                        **_json(_ref("serverEvaluationSuccess")),
                    },
                    "400": {
                        "description": "Bad evaluation request",
                        **_json(_ref("evaluationFailure")),
                    },
                    "404": {
                        "description": "Flag not found",
                        **_json(_ref("flagNotFound")),
                    },
                    **_common_failures(_RETRY_AFTER_SINGLE),
                },
            }
        },
        BULK: {
            "post": {
                "operationId": "evaluateFlagsBulk",
                "parameters": [
                    {
                        "in": "header",
                        "name": "If-None-Match",
                        "schema": {"type": "string"},
                        "required": False,
                    },
                    {"$ref": "#/components/parameters/flagConfigEtag"},
                    {"$ref": "#/components/parameters/flagConfigLastModified"},
                ],
                "requestBody": {
                    "required": True,
                    **_json(_ref("bulkEvaluationRequest")),
                },
                "responses": {
                    "200": {
                        "description": "Successful bulk evaluation",
                        "headers": {"ETag": {"schema": {"type": "string"}}},
                        **_json(_ref("bulkEvaluationSuccess")),
                    },
                    "304": {"description": "Not Modified"},
                    "400": {
                        "description": "Bad evaluation request",
                        **_json(_ref("bulkEvaluationFailure")),
                    },
                    **_common_failures(_RETRY_AFTER_BULK),
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "BearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        },
        "parameters": {
            "flagConfigEtag": {
                "in": "query",
                "name": "flagConfigEtag",
                "schema": {"type": "string"},
                "required": False,
            },
            "flagConfigLastModified": {
                "in": "query",
                "name": "flagConfigLastModified",
                "schema": _TIMESTAMP,
                "required": False,
            },
        },
        "schemas": {
            "bulkEvaluationRequest": {
                "type": "object",
                "required": ["context"],
                "properties": {"context": _ref("context")},
            },
            "bulkEvaluationSuccess": {
                "type": "object",
                "required": ["flags"],
                "properties": {
                    "flags": {
                        "type": "array",
                        "items": {
                            "oneOf": [
                                _ref("evaluationSuccess"),
                                _ref("evaluationFailure"),
                            ]
                        },
                    },
                    "metadata": _ref("metadata"),
                    "eventStreams": {"type": "array", "items": _ref("eventStream")},
                },
            },
            "bulkEvaluationFailure": {
                "type": "object",
                "properties": {
                    "errorCode": {"type": "string"},
                    "errorDetails": {"type": "string"},
                },
                "required": ["errorCode"],
            },
            "evaluationRequest": {
                "type": "object",
                "required": ["context"],
                "properties": {"context": _ref("context")},
            },
            "serverEvaluationSuccess": {"allOf": [_ref("evaluationSuccess")]},
            "eventStream": {
                "type": "object",
                "required": ["type"],
                "oneOf": [
                    {"required": ["url"], "not": {"required": ["endpoint"]}},
                    {"required": ["endpoint"], "not": {"required": ["url"]}},
                ],
                "properties": {
                    "type": {"type": "string"},
                    "url": {"type": "string", "format": "uri"},
                    "endpoint": _ref("eventStreamEndpoint"),
                    "inactivityDelaySec": {
                        "type": "integer",
                        "minimum": 1,
                        "default": 120,
                    },
                },
            },
            "eventStreamEndpoint": {
                "type": "object",
                "required": ["requestUri"],
                "properties": {
                    "origin": {"type": "string", "format": "uri"},
                    "requestUri": {"type": "string", "pattern": "^/"},
                },
            },
            "sseEvent": {
                "type": "object",
                "required": ["data"],
                "properties": {
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": _ref("sseEventData"),
                    },
                    "event": {"type": "string"},
                    "id": {"type": "string"},
                    "retry": {"type": "integer", "minimum": 0},
                },
            },
            "sseEventData": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"type": "string"},
                    "etag": {"type": "string"},
                    "lastModified": _TIMESTAMP,
                },
            },
            "evaluationSuccess": {
                "type": "object",
                "required": ["key", "reason"],
                "allOf": [
                    {
                        "properties": {
                            "key": _ref("key"),
                            "reason": {
                                "type": "string",
                                # Fault 2 (tests/test_ofrep_schema.py: patched).
                                "enum": [
                                    "STATIC",
                                    "TARGETING_MATCH",
                                    "SPLIT",
                                    "DISABLED",
                                    "UNKNOWN",
                                ],
                            },
                            "variant": {"type": "string"},
                            "metadata": _flag_metadata(),
                        }
                    },
                    {
                        # Fault 1 (tests/test_ofrep_schema.py: patched).
                        "oneOf": [
                            _ref("booleanFlag"),
                            _ref("stringFlag"),
                            _ref("integerFlag"),
                            _ref("floatFlag"),
                            _ref("objectFlag"),
                            _ref("codeDefaultFlag"),
                        ]
                    },
                ],
            },
            "evaluationFailure": {
                "type": "object",
                "properties": {
                    "key": _ref("key"),
                    "errorCode": {
                        "type": "string",
                        "enum": [
                            "PARSE_ERROR",
                            "TARGETING_KEY_MISSING",
                            "INVALID_CONTEXT",
                            "GENERAL",
                        ],
                    },
                    "errorDetails": _ref("errorDetails"),
                    "metadata": _flag_metadata(),
                },
                "required": ["key", "errorCode"],
            },
            "flagNotFound": {
                "type": "object",
                "properties": {
                    "key": _ref("key"),
                    "errorCode": {"type": "string", "enum": ["FLAG_NOT_FOUND"]},
                    "errorDetails": _ref("errorDetails"),
                    "metadata": _flag_metadata(),
                },
                "required": ["key", "errorCode"],
            },
            "generalErrorResponse": {
                "type": "object",
                "properties": {"errorDetails": _ref("errorDetails")},
            },
            "key": {"type": "string"},
            "context": {
                "type": "object",
                "required": ["targetingKey"],
                "properties": {"targetingKey": {"type": "string"}},
                "additionalProperties": True,
            },
            "booleanFlag": _value("boolean"),
            "stringFlag": _value("string"),
            "integerFlag": _value("integer"),
            "floatFlag": _value("number", format="float"),
            "objectFlag": _value("object", additionalProperties=True),
            "codeDefaultFlag": {"type": "object", "properties": {}},
            "errorDetails": {"type": "string"},
            "metadata": {
                "type": "object",
                "additionalProperties": {
                    "oneOf": [
                        {"type": "boolean"},
                        {"type": "string"},
                        {"type": "number"},
                    ]
                },
            },
        },
    },
}
