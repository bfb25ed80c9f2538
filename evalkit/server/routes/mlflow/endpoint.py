"""How an MLflow route reads its request and answers: ``@mlflow_endpoint(router, METHOD, path)``.

MLflow's client sends a GET's fields as query parameters (a list as the key repeated) and every
other method's as a JSON body (DELETE included). The handler gets them as one dict, runs in the
thread pool as the request's user (``scoped``), and its dict is the JSON answer; evalkit errors
become MLflow's error shape (``errors.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from evalkit.errors import EvalkitError, InvalidArgument
from evalkit.server.context import scoped
from evalkit.server.routes.mlflow.errors import mlflow_crash, mlflow_error

Handler = Callable[[Request, dict[str, Any]], dict[str, Any] | None]
LIST_FIELDS = frozenset({"order_by", "stages", "experiment_ids", "run_ids"})


async def request_fields(request: Request) -> dict[str, Any]:
    """The request's fields: query parameters for GET (``LIST_FIELDS`` as lists), else the JSON body."""
    if request.method == "GET":
        query = request.query_params
        return {key: query.getlist(key) if key in LIST_FIELDS else query[key] for key in query}
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        fields = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"malformed JSON in the request body: {exc}") from None
    if not isinstance(fields, dict):
        raise InvalidArgument("the request body must be a JSON object")
    return fields


def mlflow_endpoint(router: APIRouter, method: str, path: str, summary: str) -> Callable[[Handler], Handler]:
    """Register ``handler(request, fields) -> dict`` as MLflow's ``method path``."""

    def register(handler: Handler) -> Handler:
        async def route(request: Request) -> Response:
            try:
                fields = await request_fields(request)
                answer = await run_in_threadpool(_call, handler, request, fields)
            except EvalkitError as exc:
                return mlflow_error(exc)
            except Exception as exc:  # noqa: BLE001 - answered as MLflow's INTERNAL_ERROR, logged
                return mlflow_crash(request.url.path, exc)
            return JSONResponse(answer or {})

        router.add_api_route(path, route, methods=[method], summary=summary, name=handler.__name__)
        return handler

    return register


def _call(handler: Handler, request: Request, fields: dict[str, Any]) -> dict[str, Any] | None:
    with scoped(request):
        return handler(request, fields)


def required(fields: dict[str, Any], name: str) -> Any:
    """A field the call cannot do without; ``InvalidArgument`` naming it when missing or empty."""
    value = fields.get(name)
    if value is None or value == "":
        raise InvalidArgument(f"missing value for required parameter {name!r}")
    return value


def tags_in(fields: dict[str, Any]) -> dict[str, str]:
    """MLflow's ``tags: [{"key": ..., "value": ...}]`` as a dict."""
    tags = fields.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, dict) and "key" in t for t in tags):
        raise InvalidArgument('tags must be a list of {"key": ..., "value": ...}')
    return {t["key"]: t.get("value", "") for t in tags}


def tags_out(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in tags.items()]
