"""sanet-serve's web process: app factory, routes, batcher, metrics, settings, errors, CLI."""
