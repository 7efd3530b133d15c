# syntax=docker/dockerfile:1
# The predictive autoscaler's container image: `autoscaler run` as a non-root user.
#
# Two stages. `build` installs the pinned runtime dependencies into a virtualenv
# from deploy/docker/requirements-runtime.lock (the runtime subset of requirements.lock,
# same versions and hashes; --require-hashes refuses anything else) and builds our own
# wheel. `runtime` copies only that virtualenv onto a fresh slim image: no compiler,
# no pip cache, no sources, no dev tools.
#
# The base image is pinned to an exact Python patch and Debian release. Production
# builds should also pin the digest (docs/runbook.md "Building the image"):
#   --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv && python -m venv /opt/buildtools
COPY deploy/docker/requirements-runtime.lock deploy/docker/requirements-build.lock /tmp/
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r /tmp/requirements-runtime.lock \
 && /opt/buildtools/bin/pip install --require-hashes --no-deps -r /tmp/requirements-build.lock
COPY pyproject.toml README.md /src/
COPY autoscaler /src/autoscaler
COPY models /src/models
COPY policies /src/policies
COPY simulations /src/simulations
# Build our wheel through setuptools' PEP 517 hook with the pinned setuptools/wheel:
# no build isolation, so nothing unpinned is fetched.
WORKDIR /src
# The dependencies' own test suites (~155 MB: pandas, scipy, numpy, statsmodels...) are
# never imported at run time; dropping them cuts the virtualenv from 850 to 691 MB
# (docs/benchmarks/deploy.md). `autoscaler --help` imports every command module.
RUN /opt/buildtools/bin/python -c "from setuptools import build_meta; build_meta.build_wheel('/tmp/wheels')" \
 && /opt/venv/bin/pip install --no-deps /tmp/wheels/*.whl \
 && find /opt/venv/lib -type d \( -name tests -o -name test \) -path '*/site-packages/*' -prune \
      -exec rm -rf {} + \
 && /opt/venv/bin/autoscaler --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="predictive-autoscaler" \
      org.opencontainers.image.description="Predictive autoscaler for Kubernetes with a cost guard" \
      org.opencontainers.image.licenses="Apache-2.0"
# 65532 is the conventional "nonroot" uid; the Deployment sets the same ids.
RUN groupadd --system --gid 65532 autoscaler \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin autoscaler
# The state directory (spend ledger) must belong to the runtime user: a fresh named
# volume or emptyDir mounted here takes its ownership from the image.
RUN mkdir -p /var/lib/predictive-autoscaler \
 && chown 65532:65532 /var/lib/predictive-autoscaler
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib
USER 65532:65532
EXPOSE 6443 8080 9443
ENTRYPOINT ["autoscaler"]
CMD ["run"]
