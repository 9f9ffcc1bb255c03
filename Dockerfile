# The image every imgpipe task runs on Kubeflow Pipelines, and the CronJob that submits
# runs: the project installed from requirements.lock on the Python that development and
# CI use. Build and push (see kubernetes/README.md):
#   docker build -t registry.example.com/ml/imgpipe:0.1.0 .
# It is also a Beam SDK worker image (Dataflow's sdk_container_image, or a portable
# runner's worker pool with --worker_pool): its entrypoint is Beam's boot program.

ARG PYTHON_IMAGE=python:3.10.13-slim-bookworm
# Must match apache-beam in requirements.lock and the Python minor version.
ARG BEAM_SDK_IMAGE=apache/beam_python3.10_sdk:2.60.0

FROM ${BEAM_SDK_IMAGE} AS beam_sdk

FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=1

# Third-party packages first (a layer that changes only with the lock), at exactly the
# versions the tests ran with.
COPY requirements.lock /opt/imgpipe/requirements.lock
RUN python -m pip install uv==0.13.9 \
 && uv pip install --system --compile-bytecode -r /opt/imgpipe/requirements.lock

# The project itself, not editable: the compiled spec names executors by import path
# (components.image_example_gen.executor.Executor, trainer.task.run_fn, ...), which must
# resolve in site-packages whatever the working directory.
COPY setup.py /opt/imgpipe/src/
COPY pipeline /opt/imgpipe/src/pipeline
COPY components /opt/imgpipe/src/components
COPY trainer /opt/imgpipe/src/trainer
RUN uv pip install --system --compile-bytecode --no-deps /opt/imgpipe/src \
 && rm -rf /opt/imgpipe/src

COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam

# A fixed numeric user, so Kubernetes can verify runAsNonRoot. KFP's launcher creates
# /gcs, /minio and /s3 for artifact paths: the user must be able to write them.
RUN groupadd --system --gid 10001 imgpipe \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/imgpipe --create-home imgpipe \
 && mkdir -p /gcs /minio /s3 \
 && chown 10001:10001 /gcs /minio /s3
USER 10001:10001
WORKDIR /home/imgpipe
ENV HOME=/home/imgpipe

ENTRYPOINT ["/opt/apache/beam/boot"]
