"""The problem-details responses each router declares, so OpenAPI shows the one error shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """RFC 9457 problem details, with the house error code in `error`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "https://kpr-mottak.invalid/problems/NotFound",
                    "title": "Not found",
                    "status": 404,
                    "detail": "no message 42",
                    "error": "NotFound",
                }
            ]
        }
    )

    type: str
    title: str
    status: int
    detail: str
    error: str = Field(description="Unauthorized, NotFound, ValidationFailed, ...")


def _problem(description: str) -> dict[str, Any]:
    return {
        "model": Problem,
        "description": description,
        "content": {"application/problem+json": {}},
    }


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem("A bad cursor or parameter"),
    401: _problem("Missing, unknown, revoked or expired token"),
    403: _problem("The token's role may not use this endpoint"),
    404: _problem("Missing, or not the caller's municipality (the same answer)"),
    422: _problem("A parameter is not valid"),
}
