"""``cocaine-tool``: the command line that uploads apps and profiles and inspects a runtime."""

from cocaine.tool.main import cli, main

__all__ = ["cli", "main"]
