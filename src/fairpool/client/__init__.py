"""Python SDK over the REST API."""

from fairpool.client.api import Client, FairpoolError, LogPage

__all__ = ["Client", "FairpoolError", "LogPage"]
