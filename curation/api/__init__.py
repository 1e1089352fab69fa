"""The curation REST API: each module registers its viewsets on config.api.router."""

from curation.api import projects  # noqa: F401
