# hubsync image: dependencies are built in a separate stage so code changes don't rebuild them,
# and the runtime stage carries no compiler.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# 1. Dependencies only (changes rarely): install from pyproject with a stub package.
COPY pyproject.toml README.md ./
RUN mkdir app && touch app/__init__.py \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/pip uninstall -y hubsync
# 2. The code (changes often).
COPY app ./app
RUN /opt/venv/bin/pip install --no-deps .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HUBSYNC_MIGRATIONS_DIR=/app/migrations \
    HUBSYNC_DATABASE_URL=sqlite+aiosqlite:////data/hubsync.db
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
# A numeric non-root user (runAsNonRoot can check it); /data holds the embedded SQLite file.
RUN mkdir /data && chown 10001:10001 /data
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["hubsync"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
