# Multi-stage: build a wheel with its dependencies, run as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reconciler reconciler
COPY connectors connectors
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 reconciler
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY config config
ENV RECONCILER_CONFIG=/app/config/reconciler.yaml \
    RECONCILER_INBOX=/data/inbox \
    RECONCILER_DATABASE_URL=sqlite:////data/reconciler.db
USER reconciler
VOLUME ["/data"]
ENTRYPOINT ["reconciler"]
CMD ["run"]
