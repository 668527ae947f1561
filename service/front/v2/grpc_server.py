"""KServe v2 over gRPC (``inference.GRPCInferenceService``), in the service's event loop.

The protocol definitions are tritonclient's generated KServe v2 stubs and servicer base
(``tritonclient.grpc.service_pb2*``): maintained with the protocol, the very messages Triton
clients send, and no code generation step here. RPCs this service does not offer (model
repository, shared memory, statistics, streaming, trace and log settings) answer
UNIMPLEMENTED naming the RPC, so a client's capability probe gets a clear no rather than a
server fault; the interceptor refuses them before the base class's stubs run, since those
raise and the raise would read as INTERNAL.

Errors: the ServiceError's status mapped by ``error_handler.GRPC_STATUS``; a message over
SANET_MAX_BODY_BYTES is refused by gRPC itself (RESOURCE_EXHAUSTED); the call's deadline is
the request's deadline. Requests go through ``ServedModel.admit`` like every front end, so a
drain (SIGTERM) refuses new calls and waits for admitted ones.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from service.config import Settings
from service.errors import MethodNotAllowed, ServiceError
from service.front.auth import check_api_key
from service.front.errors import grpc_status, to_service_error
from service.front.state import Lifecycle
from service.front.v2 import model_config, protocol
from service.front.v2.tensors import InferRequest, InputTensor, OutputTensor, RequestedOutput
from service.metrics import NO_MODEL, Metrics

log = logging.getLogger(__name__)
PROTOCOL = "v2_grpc"
#: the RPCs of ``inference.GRPCInferenceService`` this service answers; the others are refused
OFFERED = frozenset(
    {
        "ServerLive",
        "ServerReady",
        "ServerMetadata",
        "ModelReady",
        "ModelMetadata",
        "ModelConfig",
        "ModelInfer",
    }
)


class V2Servicer(pb_grpc.GRPCInferenceServiceServicer):
    """The offered v2 RPCs over the lifecycle's served models; errors raise, and the
    ``ErrorsAndMetrics`` interceptor turns them into gRPC statuses."""

    def __init__(self, life: Lifecycle, api_keys: list[bytes]) -> None:
        self.life = life
        self.api_keys = api_keys

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=not self.life.dead)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.life.ready)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(**protocol.server_metadata())

    async def ModelReady(self, request: Any, context: Any) -> Any:
        self._auth(context)
        protocol.check_version(request.name, request.version)
        try:
            self.life.model(request.name)
        except ServiceError as exc:
            if exc.status_code != 503:  # loading: just "not ready"
                raise
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=self.life.ready)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        self._auth(context)
        protocol.check_version(request.name, request.version)
        meta = protocol.model_metadata(self.life.model(request.name))
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]],
        )

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        self._auth(context)
        protocol.check_version(request.name, request.version)
        config = model_config.model_config_message(self.life.model(request.name))
        return pb.ModelConfigResponse(config=config)

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        start = time.monotonic()
        self._auth(context)
        protocol.check_version(request.model_name, request.model_version)
        served = self.life.model(request.model_name)
        remaining = context.time_remaining()
        budget = self.life.settings.timeout_ms / 1000
        if remaining is not None:
            budget = min(budget, remaining)
        with served.admit(start + budget, start) as job:
            req = parse_infer(request)
            job.tighten(protocol.deadline_of(req, start, budget))
            outputs = await protocol.infer(served, job, req)
        return render_infer(served.name, req.id, outputs)

    def _auth(self, context: Any) -> None:
        if not self.api_keys:
            return
        meta = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        check_api_key(self.api_keys, meta.get("authorization", ""), meta.get("x-api-key"))


class ErrorsAndMetrics(grpc.aio.ServerInterceptor):
    """Every RPC: a raised error becomes its gRPC status (``error_handler.grpc_status``);
    ModelInfer is counted in the request metrics, as the HTTP middleware counts /classify;
    an RPC not in ``OFFERED`` answers UNIMPLEMENTED (a client's error, never counted)."""

    def __init__(self, life: Lifecycle, metrics: Metrics) -> None:
        self.life = life
        self.metrics = metrics

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None:
            return handler
        rpc = details.method.rsplit("/", 1)[-1]
        if rpc not in OFFERED:
            return _refused(handler, rpc)
        if handler.unary_unary is None:
            return handler
        infer = rpc == "ModelInfer"
        inner = handler.unary_unary

        async def guarded(request: Any, context: Any) -> Any:
            start, status = time.monotonic(), 500
            try:
                response = await inner(request, context)
                status = 200
                return response
            except asyncio.CancelledError:
                status = 499
                raise
            except Exception as exc:
                status = to_service_error(exc).status_code
                await _abort(context, exc)
            finally:
                if infer:
                    self._count(request.model_name, status, time.monotonic() - start)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _count(self, name: str, status: int, seconds: float) -> None:
        label = name if name in self.life.models else NO_MODEL
        self.metrics.observe_request(label, status, PROTOCOL, seconds)


def _refused(handler: Any, rpc: str) -> Any:
    """A handler of the same kind as ``handler`` that answers UNIMPLEMENTED, naming ``rpc``."""
    error = MethodNotAllowed(f"sanet-serve does not offer the RPC {rpc} (docs/api.md)")

    async def refuse(request: Any, context: Any) -> Any:
        await _abort(context, error)

    codec = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(refuse, **codec)
    return grpc.stream_stream_rpc_method_handler(refuse, **codec)  # ModelStreamInfer


async def _abort(context: Any, exc: BaseException) -> None:
    """End the call with the status of ``exc`` (raises, as grpc.aio's abort does)."""
    err = to_service_error(exc)
    if err.status_code == 500:
        log.error("gRPC call failed: %s", err.code, exc_info=exc if err is not exc else None)
    if err.retry_after_s:
        context.set_trailing_metadata((("retry-after", str(err.retry_after_s)),))
    await context.abort(grpc_status(err), err.message)


def parse_infer(request: Any) -> InferRequest:
    """A ModelInferRequest as the shared request: raw contents when given, else typed."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise protocol.InvalidParameter("raw_input_contents must match the inputs one to one")
    inputs = []
    for i, t in enumerate(request.inputs):
        c = t.contents
        values: list[Any] = list(c.bytes_contents) or list(c.fp32_contents)
        inputs.append(
            InputTensor(
                t.name,
                t.datatype,
                tuple(t.shape),
                raw=raw[i] if raw else None,
                values=None if raw else values,
            )
        )
    outputs = []
    for o in request.outputs:
        k = o.parameters["classification"].int64_param if "classification" in o.parameters else 0
        outputs.append(RequestedOutput(o.name, classification=k))
    timeout = request.parameters["timeout"].int64_param if "timeout" in request.parameters else None
    return InferRequest(request.model_name, request.id, inputs, outputs, timeout_us=timeout)


def render_infer(model: str, request_id: str, outputs: list[OutputTensor]) -> Any:
    return pb.ModelInferResponse(
        model_name=model,
        model_version=protocol.MODEL_VERSION,
        id=request_id,
        outputs=[
            pb.ModelInferResponse.InferOutputTensor(name=o.name, datatype=o.datatype, shape=o.shape)
            for o in outputs
        ],
        raw_output_contents=[o.to_bytes() for o in outputs],
    )


class GrpcFrontEnd:
    """The grpc.aio server on SANET_GRPC_PORT, started and stopped by the app's lifespan."""

    def __init__(self, settings: Settings, servicer: V2Servicer, metrics: Metrics) -> None:
        self.settings = settings
        self.servicer = servicer
        self.interceptor = ErrorsAndMetrics(servicer.life, metrics)
        self.server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        """Bind and serve; the bound port (raises when the port cannot be bound)."""
        limit = self.settings.max_body_bytes
        # every front end binds the port: the kernel spreads connections among them
        self.server = grpc.aio.server(
            interceptors=[self.interceptor],
            options=[("grpc.max_receive_message_length", limit), ("grpc.so_reuseport", 1)],
        )
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(self.servicer, self.server)
        address = f"{self.settings.host}:{self.settings.grpc_port}"
        self.port = self.server.add_insecure_port(address)
        if not self.port:
            raise RuntimeError(f"cannot bind gRPC to {address}")
        await self.server.start()
        log.info("KServe v2 gRPC on %s", address)
        return self.port

    async def stop(self, grace: float) -> None:
        """After the drain: finish what is left within ``grace`` seconds, then close."""
        if self.server is not None:
            await self.server.stop(grace)
