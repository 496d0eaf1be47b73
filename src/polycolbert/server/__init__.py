"""The HTTP API: Jina-compatible routes over locally served models (see ``app.create_app``)."""
