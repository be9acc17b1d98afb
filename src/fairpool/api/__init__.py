"""REST API (FastAPI): thin routers over the services; OpenAPI at /docs."""
