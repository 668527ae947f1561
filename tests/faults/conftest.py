"""Fixtures of the fault tier: the real app over real HTTP, as in tests/api, and raw sockets.

Each test here is one row of issue 11's table: a hostile client, a faulty cache or a
shutdown under load that the service once did not hold up against.
"""

from __future__ import annotations
