"""REST endpoints of this app; viewsets register on config.api.router."""
