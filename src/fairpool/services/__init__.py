"""Use cases on the store (queues, jobs, nodes), shared by the REST API and tests. No HTTP here:
errors are :class:`fairpool.services.errors.ServiceError` subclasses that say what to fix."""
