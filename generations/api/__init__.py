"""The JSON API at /api/v1: its views, URL patterns, OpenAPI description, JSON shape and token
auth, kept together so that the pages and the API only share the layers under them (forms,
queries, actions), never each other."""
