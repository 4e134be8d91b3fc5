#!/bin/sh
# Entry point of the confluence_pipeline image. Modes:
#   grpc        (default) serve the code location to a Dagster deployment: dagster api grpc on GRPC_PORT (4000)
#   all-in-one  a single-container install: the HTTP API on PORT (8083), dagster-webserver (the UI) on
#               DAGSTER_UI_PORT (3000) and dagster-daemon
#   http-api    only the HTTP API on PORT; it launches runs through the webserver at DAGSTER_WEBSERVER_URL
#   webserver | daemon   one of the two (the UI on DAGSTER_UI_PORT), for a compose file with one per container
#   healthcheck          exit 0 when everything this container's mode runs answers (used by HEALTHCHECK)
#   anything else        run as a command (e.g. `dagster job execute -j confluence_sync`)
set -eu

APP_DIR="${APP_DIR:-/opt/dagster/app}"
MODULE="confluence_pipeline.definitions"
GRPC_PORT="${GRPC_PORT:-4000}"
PORT="${PORT:-8083}"
DAGSTER_UI_PORT="${DAGSTER_UI_PORT:-3000}"
MODE_FILE="${TMPDIR:-/tmp}/confluence-pipeline.mode"

# Dagster reads its instance from $DAGSTER_HOME/dagster.yaml. A mounted, empty DAGSTER_HOME gets the
# shipped file: DAGSTER_STORAGE=postgres selects dagster.postgres.yaml (DAGSTER_PG_* variables).
prepare_home() {
  : "${DAGSTER_HOME:?DAGSTER_HOME must be set}"
  mkdir -p "$DAGSTER_HOME"
  if [ ! -f "$DAGSTER_HOME/dagster.yaml" ]; then
    case "${DAGSTER_STORAGE:-sqlite}" in
      sqlite) cp "$APP_DIR/dagster.yaml" "$DAGSTER_HOME/dagster.yaml" ;;
      postgres) cp "$APP_DIR/dagster.postgres.yaml" "$DAGSTER_HOME/dagster.yaml" ;;
      *) echo "DAGSTER_STORAGE must be sqlite or postgres, not '${DAGSTER_STORAGE}'" >&2; exit 2 ;;
    esac
  fi
}

# Exit 0 when the URL answers 2xx (open raises on anything else, and on no answer within 5 s). No proxy:
# HTTP_PROXY set for Confluence cannot reach this container's loopback.
probe() {
  python -c "import sys, urllib.request as u; u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=5)" "$1"
}

# Exit 0 when the HTTP API's /health says "ok": it reached the webserver, the code location loaded and the
# daemon's run queue has a recent heartbeat.
probe_all_healthy() {
  python -c "import json, sys, urllib.request as u
with u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=8) as answer:
    sys.exit(0 if json.load(answer).get('status') == 'ok' else 1)" "$1"
}

mode="${1:-grpc}"
case "$mode" in
  grpc)
    echo grpc > "$MODE_FILE"
    exec dagster api grpc -h 0.0.0.0 -p "$GRPC_PORT" -m "$MODULE"
    ;;
  webserver)
    prepare_home
    echo webserver > "$MODE_FILE"
    exec dagster-webserver -h 0.0.0.0 -p "$DAGSTER_UI_PORT" -w "$APP_DIR/workspace.yaml"
    ;;
  http-api)
    echo http-api > "$MODE_FILE"
    exec python -m confluence_pipeline.http_api
    ;;
  daemon)
    prepare_home
    echo daemon > "$MODE_FILE"
    exec dagster-daemon run -w "$APP_DIR/workspace.yaml"
    ;;
  all-in-one)
    prepare_home
    echo all-in-one > "$MODE_FILE"
    # Three processes creating a fresh instance's SQLite storage at once race on its schema version (the code
    # location then fails to load); create it once first. On an existing instance this only opens it.
    python -c "import dagster; dagster.DagsterInstance.get().dispose()"
    dagster-daemon run -w "$APP_DIR/workspace.yaml" &
    daemon_pid=$!
    dagster-webserver -h 0.0.0.0 -p "$DAGSTER_UI_PORT" -w "$APP_DIR/workspace.yaml" &
    webserver_pid=$!
    # The API launches runs through the webserver next to it unless told otherwise.
    DAGSTER_WEBSERVER_URL="${DAGSTER_WEBSERVER_URL:-http://127.0.0.1:$DAGSTER_UI_PORT}" \
      python -m confluence_pipeline.http_api &
    api_pid=$!
    # Stop all three on a signal, and stop the container when any dies (so the orchestrator restarts it).
    status=1
    trap 'status=0; kill -TERM "$daemon_pid" "$webserver_pid" "$api_pid" 2>/dev/null || true' INT TERM
    while kill -0 "$daemon_pid" 2>/dev/null && kill -0 "$webserver_pid" 2>/dev/null \
      && kill -0 "$api_pid" 2>/dev/null; do
      sleep 1 || true  # a signal interrupting sleep must reach the trap, not `set -e`
    done
    kill -TERM "$daemon_pid" "$webserver_pid" "$api_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
    wait "$webserver_pid" 2>/dev/null || true
    wait "$api_pid" 2>/dev/null || true
    exit "$status"
    ;;
  healthcheck)
    case "$(cat "$MODE_FILE" 2>/dev/null || echo none)" in
      grpc) exec dagster api grpc-health-check -p "$GRPC_PORT" ;;
      webserver) probe "http://127.0.0.1:$DAGSTER_UI_PORT/server_info" ;;
      http-api) probe "http://127.0.0.1:$PORT/health" ;;
      all-in-one)
        probe "http://127.0.0.1:$DAGSTER_UI_PORT/server_info"
        probe_all_healthy "http://127.0.0.1:$PORT/health" ;;
      *) exit 0 ;;  # daemon, or a one-off command: nothing to probe
    esac
    ;;
  *)
    exec "$@"
    ;;
esac
