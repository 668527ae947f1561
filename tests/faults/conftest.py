"""Fixtures of the fault tier: the real app over real HTTP, as in tests/api, and raw sockets.

Each test here is one fault: a hostile client, a faulty cache or a shutdown under load.
"""

from __future__ import annotations
