"""The HTTP proxy: HTTP requests in, app events out, streamed replies back."""

from cocaine.proxy.routing import Route, route
from cocaine.proxy.server import ProxyConfig, ProxyServer

__all__ = ["ProxyConfig", "ProxyServer", "Route", "route"]
