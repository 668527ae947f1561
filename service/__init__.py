"""sanet-serve's process tree: the supervisor and what every process shares (settings, errors,
metrics, logs) at the top; ``ipc/`` (the wire and the slot ring), ``engine/`` (the engine
process) and ``front/`` (the front-end processes) below (docs/architecture.md)."""
