"""Pinecone's two error-body dialects, and the exception handlers raise to select one.

The control plane (``/indexes``) answers errors as
``{"error": {"code": "NOT_FOUND", "message": ...}, "status": 404}``; the data plane
(``/vectors/*``, ``/query``, ...) answers with the gRPC-status JSON its gateway
emits, ``{"code": 5, "message": ..., "details": []}``. The SDK reads ``message``
from either shape, but code that logs or branches on ``body`` sees the difference,
so the fake keeps both.
"""

from __future__ import annotations

from typing import Any, Literal

Plane = Literal["control", "data"]

# gRPC status codes the data-plane gateway puts in ``code``.
_GRPC_CODE_BY_STATUS: dict[int, int] = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 5,  # NOT_FOUND
    409: 6,  # ALREADY_EXISTS
    412: 9,  # FAILED_PRECONDITION
    413: 3,  # the size cap is reported as a bad argument
    429: 8,  # RESOURCE_EXHAUSTED
    500: 13,  # INTERNAL
    501: 12,  # UNIMPLEMENTED
    503: 14,  # UNAVAILABLE
}

_CONTROL_CODE_BY_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "PAYMENT_REQUIRED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    413: "INVALID_ARGUMENT",
    422: "UNPROCESSABLE_ENTITY",
    429: "RESOURCE_EXHAUSTED",
    500: "UNKNOWN",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}


class ApiFailure(Exception):
    """An HTTP error answer; the handler renders it in the dialect of the plane it hit."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        error_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.error_code = error_code

    def body(self, plane: Plane) -> dict[str, Any]:
        if plane == "control":
            code = self.error_code or _CONTROL_CODE_BY_STATUS.get(self.status, "UNKNOWN")
            return {"error": {"code": code, "message": self.message}, "status": self.status}
        return {
            "code": _GRPC_CODE_BY_STATUS.get(self.status, 2),
            "message": self.message,
            "details": [],
        }


def bad_request(message: str) -> ApiFailure:
    return ApiFailure(400, message)


def not_found(message: str) -> ApiFailure:
    return ApiFailure(404, message)
