# sanet-serve container: a virtualenv built in one stage, copied into a slim runtime stage
# that runs as a non-root user.
#
# CPU (default):  docker build -t sanet-serve .
# GPU nodes:      docker build -t sanet-serve:gpu \
#                   --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 \
#                   --build-arg TORCH_VERSION=2.13.0+cu128 .
# Offline / local wheel: put the wheel into deploy/wheels/ and pin it exactly, e.g.
#   --build-arg TORCH_INDEX=https://pypi.org/simple --build-arg TORCH_VERSION=2.13.0+cpu
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# Index that torch (and only torch and its own dependencies) is installed from.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# Torch first, in its own layer: it is by far the largest and changes least often.
COPY deploy/wheels/ /wheels/
RUN PIP_INDEX_URL="${TORCH_INDEX}" pip install --find-links /wheels "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README* ./
COPY model/ model/
COPY service/ service/
# The pinned torch above already satisfies the project's `torch==` requirement.
RUN pip install . \
    && python -c "import torch, service, model; print('torch', torch.__version__)"

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 sanet \
    && useradd --system --uid 10001 --gid sanet --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin sanet \
    && mkdir -p /models \
    && chown sanet:sanet /models
COPY --from=build /opt/venv /opt/venv
COPY deploy/docker/healthcheck.py /opt/sanet/healthcheck.py
# Caches go to /tmp so that the root filesystem can be mounted read-only.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    TORCH_HOME=/tmp/torch \
    SANET_CACHE_DIR=/tmp/sanet-cache \
    SANET_HOST=0.0.0.0 \
    SANET_PORT=8000 \
    SANET_GRPC_PORT=8001 \
    SANET_DEVICE=cpu \
    SANET_LOG_JSON=true
# Checkpoints are mounted read-only here and named in SANET_MODELS,
# e.g. SANET_MODELS=sanet50=/models/sa_resnet50.pth.tar
VOLUME ["/models"]
USER 10001:10001
WORKDIR /tmp
# 8000: HTTP (/classify, KServe v2 REST, /metrics); 8001: KServe v2 gRPC
EXPOSE 8000 8001
# /readyz is 200 only once every model is loaded, compiled and warmed up.
HEALTHCHECK --interval=10s --timeout=3s --start-period=180s --retries=3 \
    CMD ["python", "/opt/sanet/healthcheck.py"]
CMD ["sanet-serve"]
