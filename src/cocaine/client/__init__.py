"""The Python client: call any Cocaine service found through the locator."""

from cocaine.client.endpoints import DEFAULT_LOCATOR, locator_endpoints, parse_endpoints
from cocaine.client.service import Service, resolve
from cocaine.client.stream import Rx, Stream, Tx

__all__ = [
    "DEFAULT_LOCATOR",
    "Rx",
    "Service",
    "Stream",
    "Tx",
    "locator_endpoints",
    "parse_endpoints",
    "resolve",
]
