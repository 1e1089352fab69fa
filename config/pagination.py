"""Pagination for every list of the API (its own module: DRF imports it while loading its generics)."""

from rest_framework import exceptions, pagination


class CursorPagination(pagination.CursorPagination):
    """A cursor the client mangled is a bad request (400), not a missing page."""

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise exceptions.ValidationError({self.cursor_query_param: [self.invalid_cursor_message]}) from None
