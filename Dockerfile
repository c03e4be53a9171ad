# Multi-stage: build wheels of the package and its dependencies, install them into a clean
# image, run as a non-root user. Build from the repository root:
#   docker build -t reconciler:local .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reconciler reconciler
COPY connectors connectors
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 --user-group reconciler \
    && mkdir -p /data/inbox \
    && chown -R reconciler:reconciler /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-compile /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY config config
ENV RECONCILER_CONFIG=/app/config/reconciler.yaml \
    RECONCILER_INBOX=/data/inbox \
    RECONCILER_DATABASE_URL=sqlite:////data/reconciler.db \
    RECONCILER_HTTP_HOST=0.0.0.0 \
    RECONCILER_HTTP_PORT=8080 \
    PYTHONUNBUFFERED=1
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
# Liveness only (/healthz never touches the database); orchestrators probe /readyz too.
# python:slim has no curl, so the probe is Python's own urllib.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('RECONCILER_HTTP_PORT', '8080') + '/healthz', timeout=4)"
ENTRYPOINT ["reconciler"]
CMD ["run"]
