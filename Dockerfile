# syntax=docker/dockerfile:1
#
# One image for every component of the DSR orchestrator; the command picks the component:
#
#   python worker.py                          orchestrator worker (default)
#   python worker.py --connector sms ...      connector worker(s), one task queue each
#   python -m services.codec_server                 codec server (Web UI decodes through it)
#   python -m services.download_server              download server (access packages)
#   python -m dsr.migrations upgrade          application database migrations (one-shot)
#   python starter.py setup-cluster           search attributes on the namespace (one-shot)
#   python starter.py ...                     the officers' CLI
#
# Configuration is environment only (DSR_*; see dsr/settings.py and deploy/README.md).
# Nothing secret is baked in: payload keys, the HMAC key and database passwords come from the
# orchestrator's environment (Kubernetes Secret, compose secrets.env) at run time.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/dsr
WORKDIR /src
COPY pyproject.toml ./
COPY dsr/ dsr/
COPY workflows/ workflows/
COPY activities/ activities/
COPY connectors/ connectors/
COPY services/ services/
COPY cli/ cli/
COPY worker.py starter.py ./
# Runtime dependencies only: no [dev] or [browser] extras. Every dependency ships manylinux
# wheels for CPython 3.11, so the slim image needs no compiler.
RUN /opt/dsr/bin/pip install . \
 && /opt/dsr/bin/pip check

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="dsr-orchestrator" \
      org.opencontainers.image.description="Temporal-based data-subject-request orchestrator"
# A fixed, unprivileged uid/gid (Kubernetes runAsUser/fsGroup and compose `user:` use it).
RUN groupadd --system --gid 10001 dsr \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin dsr \
 && mkdir -p /data \
 && chown 10001:10001 /data
COPY --from=build /opt/dsr /opt/dsr
WORKDIR /app
# The scripts run from here and import the installed packages (policies, templates and the
# connector registry are package data of the installed distribution).
COPY worker.py starter.py ./
ENV PATH=/opt/dsr/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    LOGNAME=dsr \
    MPLCONFIGDIR=/tmp/matplotlib \
    DSR_DATA_DIR=/data
# Fail the build if the installed distribution misses package data or an entry point.
RUN python -c "from dsr.settings import Settings, POLICY_DIR; \
s = Settings(_env_file=None); \
assert (POLICY_DIR / 'deadlines.yaml').is_file(), 'policy files missing'; \
assert s.connector_registry.is_file(), 'connector registry missing'" \
 && python -c "import services.codec_server, services.download_server; \
from dsr.migrations import head_revision; print('migrations head', head_revision())" \
 && python worker.py --help > /dev/null \
 && python starter.py --help > /dev/null
USER 10001:10001
# Writable state (ledger anchors, reference connectors' SQLite stores in compose) lives here;
# mount a volume. The root filesystem can be read-only (with a tmpfs on /tmp).
VOLUME ["/data"]
# codec server, download server, Prometheus metrics (DSR_CODEC_PORT, DSR_DOWNLOAD_PORT,
# DSR_METRICS_PORT as set in deploy/).
EXPOSE 8081 8082 9464
CMD ["python", "worker.py"]
