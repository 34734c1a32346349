"""The API's contract as the tests read it: the OpenAPI document cti serves, and what validates a
real answer, pop or webhook against it (jsonschema, Draft 2020-12, date-times checked)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from cti.web.app import routes

TITLE, VERSION = "cti — 12345 hotline desk and integration API", "0.1.0"


def document() -> dict[str, Any]:
    """The document, as GET /api/openapi.json gives it."""
    return json.loads(json.dumps(routes.openapi(TITLE, VERSION)))


@dataclass
class Contract:
    document: dict[str, Any] = field(default_factory=document)
    checked: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path template, status) seen

    def validate(self, schema: dict[str, Any], instance: Any) -> None:
        """Raise jsonschema's ValidationError when ``instance`` does not match ``schema`` (whose
        #/components/… references are the document's)."""
        rooted = {**schema, "components": self.document["components"]}
        Draft202012Validator(rooted, format_checker=FormatChecker()).validate(instance)

    def component(self, name: str, instance: Any) -> None:
        self.validate({"$ref": f"#/components/schemas/{name}"}, instance)

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        """The document's path template and operation for a request's method and path."""
        path = path.split("?", 1)[0]
        for template, operations in self.document["paths"].items():
            pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
            if re.fullmatch(pattern, path) and method.lower() in operations:
                return template, operations[method.lower()]
        raise AssertionError(f"{method} {path} is not in the OpenAPI document")

    def answer(self, method: str, path: str, status: int, content_type: str, raw: bytes) -> None:
        """Check an answer: its status is documented for the operation, its media type too, and a
        JSON body matches the documented schema."""
        template, operation = self.operation(method, path)
        response = operation["responses"].get(str(status))
        assert response is not None, f"{method} {template} answered {status}, not in {sorted(operation['responses'])}"
        content = response.get("content", {})
        assert content_type in content, f"{method} {template} {status} answered {content_type}, not {list(content)}"
        if content_type == "application/json":
            schema = content[content_type].get("schema")
            assert schema is not None, f"{method} {template} {status} has no schema"
            self.validate(schema, json.loads(raw))
        self.checked.append((method.upper(), template, status))
