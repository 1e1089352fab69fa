"""The curation REST API: each module registers its viewsets on config.api.router."""

from curation.api import datasets, generation, imports, projects, prompts, synthesis  # noqa: F401
