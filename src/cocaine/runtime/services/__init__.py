"""The runtime's built-in services: locator, node, logging and storage."""
