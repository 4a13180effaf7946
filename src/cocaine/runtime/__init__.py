"""The cocaine-runtime daemon: config, context, services, apps and isolates."""
