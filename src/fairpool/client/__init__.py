"""Python SDK over the REST API."""

from fairpool.client.api import Client, FairpoolError

__all__ = ["Client", "FairpoolError"]
