"""The evalkit tracking server: REST API, authentication and web UI."""
