"""Routers of the API, one per resource; ``functions.api.app`` includes them."""
