"""API plumbing shared by every app: the exception handler and the v1 router (schema: config.schema)."""

from django.core.exceptions import PermissionDenied, ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.routers import DefaultRouter
from rest_framework.views import exception_handler as drf_exception_handler


class IdRouter(DefaultRouter):
    """Object ids in URLs are whole numbers of at most 18 digits (within a signed 64-bit column), so
    ``runs/x/`` or ``runs/99999999999999999999/`` is a 404 from the URL resolver, never a failed query.
    A viewset with another lookup (projects by slug) sets its own ``lookup_value_regex``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._default_value_pattern = ID_PATTERN


ID_PATTERN = "[0-9]{1,18}"
router = IdRouter()


def exception_handler(exc, context):
    """Services raise Django's ValidationError; the API answers 400 with its messages."""
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(detail=detail)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    return drf_exception_handler(exc, context)
