"""The HTTP API function: a Powertools REST resolver whose routers serve graphs, runs, tools and health."""
