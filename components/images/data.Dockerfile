# syntax=docker/dockerfile:1
# kfpc data image (kfpc-data): ingest, statistics, schema, validate.
# Holds pyarrow, pandas, tensorflow-metadata and kfp's executor; no TensorFlow.
# Installed from requirements-data.txt (the lock the container contract test also installs) plus the kfpc
# wheel built from this checkout. Build from the repository root:
#   docker build -f components/images/data.Dockerfile -t <registry>/kfpc-data:<kfpc version> .
# (python components/images/build.py build does that for every family with the right tag.)

# Exact patch version, never a floating tag. The release workflow resolves this tag's digest when it builds
# and passes PYTHON_IMAGE=python:...@sha256:... so the published image records the exact base it was made from.
ARG PYTHON_IMAGE=python:3.11.17-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
# A C compiler for the statistics' kernels (components/statistics/_ckernels.c), in this stage only: the wheel
# built below carries the compiled module, the image no compiler. The python images have Python's headers; a
# base built from Debian's packages gets them from libpython3.11-dev.
# hadolint ignore=DL3008,SC2046
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev $(python3 -c "import os, sysconfig; \
    print('' if os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')) else 'libpython3.11-dev')") \
 && rm -rf /var/lib/apt/lists/*
# The lock first: this layer, the large one, is reused as long as the lock does not change.
COPY components/images/requirements-data.txt /tmp/requirements.txt
# A bare venv filled by the base image's pip (--python): the environment itself carries no pip.
RUN python -m venv --without-pip /opt/kfpc \
 && pip --python /opt/kfpc/bin/python install --no-deps --requirement /tmp/requirements.txt
# One COPY of the build context, which the .dockerignore limits to what the wheel is built from: each
# instruction after the large lock layer is another full copy of it with buildah's vfs storage.
WORKDIR /src
COPY . ./
RUN pip wheel --no-deps --wheel-dir /tmp/wheel . \
 && pip --python /opt/kfpc/bin/python install --no-deps /tmp/wheel/kfpc-*.whl \
 && pip --python /opt/kfpc/bin/python check \
# the statistics must run their compiled kernels here, not the slower NumPy path
 && /opt/kfpc/bin/python -c "from kfpc.components.statistics import kernels; assert kernels.get(), 'no C kernels'" \
# Headers and test suites are dead weight without a compiler or pytest (see PRUNE_COMMAND in build.py).
 && find /opt/kfpc/lib/python3.11/site-packages -mindepth 2 -maxdepth 2 -type d -name include -prune -exec rm -rf {} + \
 && find /opt/kfpc/lib/python3.11/site-packages -type d -name tests -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE}
ARG KFPC_VERSION=unknown
LABEL org.opencontainers.image.title="kfpc-data" \
      org.opencontainers.image.description="kfpc data image: ingest, statistics, schema, validate" \
      org.opencontainers.image.version="${KFPC_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed non-root UID in group 0, so that clusters that run images under an arbitrary UID (OpenShift)
# can write where this user can. /gcs, /minio and /s3 are where the KFP v2 launcher puts artifacts;
# older KFP backends do not mount them as emptyDir, and a non-root task then fails with "mkdir /minio:
# permission denied" (kubeflow/pipelines#5673).
RUN useradd --uid 10001 --gid 0 --home-dir /home/kfpc --create-home --shell /usr/sbin/nologin kfpc \
 && mkdir -p /gcs /minio /s3 \
 && chown 10001:0 /gcs /minio /s3 /home/kfpc \
 && chmod 0775 /gcs /minio /s3 /home/kfpc
# python3 on PATH is the environment's: the KFP executor command runs `python3 -m kfp.dsl.executor_main`.
# Caches and configs (matplotlib's font list, keras.json) go to /tmp: with a read-only root filesystem only
# /tmp and the artifact paths are writable (the image tier found train writing them under $HOME).
ENV PATH=/opt/kfpc/bin:$PATH \
    VIRTUAL_ENV=/opt/kfpc \
    HOME=/home/kfpc \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    KERAS_HOME=/tmp/keras \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config
WORKDIR /home/kfpc
USER 10001:0
# The environment last: metadata instructions after it would each copy it again (vfs).
COPY --from=builder /opt/kfpc /opt/kfpc
