"""KServe v2 (Open Inference Protocol) front ends: HTTP on the service's port, gRPC beside it.

``protocol`` holds what both share (metadata, the infer call over a ``ServedModel``, the
tensor codec); ``http`` and ``grpc_server`` only parse their wire format and render.
"""
