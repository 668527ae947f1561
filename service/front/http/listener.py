"""Closing the pod's shared listening socket without resetting a connection.

Every front end accepts from one listening socket (the supervisor bound it before forking).
When the last copy of it closes, the kernel resets each connection still waiting in its
accept backlog, and one a client opened a moment before the close would see a reset instead
of an answer. So a draining front end first makes the kernel drop new connection attempts
(the client retries its SYN, and once the socket is gone the retry is refused), lets the
handshakes already under way land in the backlog, accepts and answers what waits there, and
only then closes its copy.

The kernel side is a classic BPF socket filter on the listening socket that drops a packet
with SYN set and ACK clear (a new connection attempt) and lets every other packet through,
so handshakes under way complete and open connections are untouched. The filter belongs to
the socket, not the process: one front end attaching it stops new connections for the pod.
"""

from __future__ import annotations

import ctypes
import logging
import select
import socket
import struct

log = logging.getLogger(__name__)

_SO_ATTACH_FILTER = 26  # asm-generic/socket.h
#: classic BPF over the TCP header (a socket filter sees the packet from its TCP header on):
#: A = flags byte; A &= SYN|ACK; SYN alone -> keep 0 bytes (drop), else keep the packet
_LD_B_ABS, _AND_K, _JEQ_K, _RET_K = 0x30, 0x54, 0x15, 0x06
_TCP_FLAGS_OFFSET, _SYN, _ACK = 13, 0x02, 0x10
_DROP_SYNS = (
    (_LD_B_ABS, 0, 0, _TCP_FLAGS_OFFSET),
    (_AND_K, 0, 0, _SYN | _ACK),
    (_JEQ_K, 0, 1, _SYN),
    (_RET_K, 0, 0, 0),
    (_RET_K, 0, 0, 0xFFFFFFFF),
)


def refuse_new_connections(listener: socket.socket) -> bool:
    """Make the kernel drop new connection attempts to ``listener`` (for every process that
    holds it); False where the filter cannot be attached (not Linux), so the caller closes
    as before."""
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in _DROP_SYNS))
    program = struct.pack("HL", len(_DROP_SYNS), ctypes.addressof(code))  # struct sock_fprog
    try:
        listener.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, program)
    except OSError as exc:
        log.warning("cannot stop new connections before closing the listener: %s", exc)
        return False
    return True


def backlog_waiting(listener: socket.socket) -> bool:
    """Whether a connection waits in ``listener``'s accept backlog."""
    if listener.fileno() < 0:
        return False
    readable, _, _ = select.select([listener], [], [], 0)
    return bool(readable)
