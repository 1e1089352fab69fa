"""The OpenAPI schema generator for every endpoint."""

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class DistillerySchema(AutoSchema):
    """Documents the errors every endpoint really answers, besides its success body.

    403 without credentials or for a role too low (or a curator doing an operator's job), 404 for
    objects the user may not see (outsiders learn nothing) and malformed ids, 400 for bodies and query
    parameters the service refuses.
    """

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        # Session auth comes first, so a request without credentials is a 403 too (DRF answers 401 only
        # when the first authenticator names a WWW-Authenticate scheme).
        errors = {"403": ("Not logged in, or not allowed for this user.", ErrorSerializer)}
        if self.method in ("POST", "PUT", "PATCH") or self.method == "GET" and self._is_list_view():
            errors["400"] = ("The request was refused; the body says why, per field.", None)
        if "{" in self.path or self.method != "GET":
            errors["404"] = ("No such object, or not visible to this user.", ErrorSerializer)
        for code, (description, serializer) in errors.items():
            if code not in responses:
                response = self._get_response_for_code(
                    serializer if code != "400" else {"type": "object", "additionalProperties": {}}, code,
                    direction=direction,
                )
                response["description"] = description
                responses[code] = response
        return responses
