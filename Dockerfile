# confluence_pipeline: one image for the Dagster code location and for a single-container install.
#
#   docker build -t confluence-pipeline .
#   # code location for an existing Dagster deployment (Helm chart, compose): gRPC on 4000 (the default)
#   docker run --env-file connector.env -p 4000:4000 confluence-pipeline
#   # everything in one container: UI on $PORT (8083) + daemon, instance data in a volume
#   docker run --env-file connector.env -p 8083:8083 -v dagster-home:/opt/dagster/dagster_home \
#       confluence-pipeline all-in-one
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_DIR=/opt/dagster/app \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    PORT=8083 \
    DAGSTER_UI_PORT=3000 \
    GRPC_PORT=4000

RUN groupadd --system --gid 10001 dagster \
    && useradd --system --uid 10001 --gid dagster --home-dir /opt/dagster --shell /usr/sbin/nologin dagster

WORKDIR /opt/dagster/app

# Exact, hash-checked dependency versions from the lock (its own layer, rebuilt only when the lock changes),
# then the package on top without resolving anything again.
COPY requirements/image.lock ./requirements/
RUN pip install --require-hashes -r requirements/image.lock
COPY pyproject.toml ./
COPY confluence_pipeline ./confluence_pipeline
RUN pip install --no-deps . && rm -rf build *.egg-info

COPY workspace.yaml dagster.yaml dagster.postgres.yaml ./
COPY config ./config
COPY deploy/docker/entrypoint.sh /usr/local/bin/confluence-pipeline

RUN chmod 0755 /usr/local/bin/confluence-pipeline \
    && mkdir -p "$DAGSTER_HOME" \
    && cp dagster.yaml "$DAGSTER_HOME/dagster.yaml" \
    && chown -R dagster:dagster "$DAGSTER_HOME"

USER dagster
VOLUME ["/opt/dagster/dagster_home"]
EXPOSE 4000 8083 3000

HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["confluence-pipeline", "healthcheck"]

ENTRYPOINT ["confluence-pipeline"]
CMD ["grpc"]
