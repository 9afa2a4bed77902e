"""The errors the server answers with, in OpenAI's shape (``{"error": {"message", "type", "param", "code"}}``).

Each class carries its HTTP status and OpenAI error type (given as class keywords);
:meth:`ServingError.to_response` is the body.
"""

from __future__ import annotations

from collections.abc import Sequence

from dataflywheel.errors import FlywheelError
from dataflywheel.serving.protocol import ErrorInfo, ErrorResponse

__all__ = [
    "InternalServerError",
    "InvalidRequestError",
    "ModelNotFoundError",
    "ServiceUnavailableError",
    "ServingError",
]


class ServingError(FlywheelError):
    """An answer the server gives as an HTTP error, in OpenAI's shape."""

    status_code = 500
    error_type = "internal_error"

    def __init_subclass__(cls, *, status: int | None = None, error_type: str | None = None) -> None:
        super().__init_subclass__()
        if status is not None:
            cls.status_code = status
        if error_type is not None:
            cls.error_type = error_type

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def to_response(self) -> ErrorResponse:
        return ErrorResponse(
            error=ErrorInfo(message=self.message, type=self.error_type, param=self.param, code=self.code)
        )


class InvalidRequestError(ServingError, status=400, error_type="invalid_request_error"):
    """400: the request cannot be served as it is (bad value, unsupported option)."""


class ModelNotFoundError(ServingError, status=404, error_type="invalid_request_error"):
    """404: the request names a model that is neither the base model nor a loaded adapter."""

    def __init__(self, message: str, *, param: str | None = "model", code: str | None = "model_not_found") -> None:
        super().__init__(message, param=param, code=code)

    @classmethod
    def for_model(cls, model: str, available: Sequence[str]) -> ModelNotFoundError:
        return cls(f"The model `{model}` does not exist. Available models: {', '.join(available)}")


class ServiceUnavailableError(ServingError, status=503, error_type="service_unavailable"):
    """503: the server is shutting down."""


class InternalServerError(ServingError, status=500, error_type="internal_error"):
    """500: the engine failed on a request it had accepted."""
