"""Python SDK over the REST API."""

from fairpool.client.api import Client, FairpoolError, Job, LogPage

__all__ = ["Client", "FairpoolError", "Job", "LogPage"]
