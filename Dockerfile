# hubsync image — what the Helm chart (helm/hubsync) runs: entrypoint `hubsync`, user 10001,
# port 8000, migrations in /app/migrations (tests/unit/test_dockerfile.py holds the chart to
# these). Dependencies are built in a separate stage so a code change does not rebuild them,
# and the runtime stage carries no compiler.
#   docker build --build-arg VERSION=0.2.0 --build-arg SOURCE=<repository URL> -t hubsync:0.2.0 .

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# 1. Dependencies only (changes rarely): install from pyproject with a stub package.
COPY pyproject.toml README.md ./
RUN mkdir app && touch app/__init__.py \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/pip uninstall -y hubsync
# 2. The code (changes often). A regular (non-editable) install, so the package data — the
#    admin UI's templates and static files — is inside the virtual environment.
COPY app ./app
RUN /opt/venv/bin/pip install --no-deps .

FROM python:3.11-slim AS runtime
ARG VERSION=0.2.0
ARG SOURCE=""
ARG REVISION=""
LABEL org.opencontainers.image.title="hubsync" \
      org.opencontainers.image.description="Bidirectional sync between WARP customers and HubSpot companies" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HUBSYNC_MIGRATIONS_DIR=/app/migrations \
    HUBSYNC_DATABASE_URL=sqlite+aiosqlite:////data/hubsync.db
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The Alembic scripts `hubsync migrate` runs (the chart's migration Job).
COPY alembic.ini ./
COPY migrations ./migrations
# A numeric non-root user (runAsNonRoot can check it); /data holds the embedded SQLite file.
# The chart runs the root filesystem read-only and mounts /tmp; nothing else is written.
RUN mkdir /data && chown 10001:10001 /data
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["hubsync"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
