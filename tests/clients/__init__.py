"""Client contract tests: real client libraries against a live server."""
