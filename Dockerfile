# syntax=docker/dockerfile:1
# Build stage: a virtual environment with the locked dependencies and the package.
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential pkg-config libxml2-dev libxmlsec1-dev libxmlsec1-openssl \
    && rm -rf /var/lib/apt/lists/*
# The source lives at the same path in both stages: the package is installed in place
# (editable), so it finds schemas/ and migrations/ beside it.
WORKDIR /srv/kpr
COPY pyproject.toml requirements.lock README.md alembic.ini ./
COPY app ./app
COPY schemas ./schemas
COPY migrations ./migrations
# Runtime dependencies only (no [dev] extra), pinned by the lock file used as constraints.
RUN python -m venv /opt/venv && /opt/venv/bin/pip install -c requirements.lock -e .

# Runtime stage: no compilers, a non-root user, migrations as a separate command.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends libxmlsec1 libxmlsec1-openssl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /srv/kpr kpr
COPY --from=build /opt/venv /opt/venv
COPY --from=build /srv/kpr /srv/kpr
WORKDIR /srv/kpr
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 KPR_ENV=production
USER kpr
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"
# Run migrations first, as their own step:  docker run IMAGE kpr-mottak db upgrade
CMD ["kpr-mottak", "serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "2"]
