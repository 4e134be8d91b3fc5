#!/bin/sh
# Entry point of the confluence_pipeline image. Modes:
#   grpc        (default) serve the code location to a Dagster deployment: dagster api grpc on GRPC_PORT (4000)
#   all-in-one  a single-container install: dagster-webserver on PORT (8083) plus dagster-daemon
#   webserver | daemon   one of the two, for a compose file that runs them as separate containers
#   healthcheck          exit 0 when the mode this container runs in answers (used by HEALTHCHECK)
#   anything else        run as a command (e.g. `dagster job execute -j confluence_sync`)
set -eu

APP_DIR="${APP_DIR:-/opt/dagster/app}"
MODULE="confluence_pipeline.definitions"
GRPC_PORT="${GRPC_PORT:-4000}"
PORT="${PORT:-8083}"
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

mode="${1:-grpc}"
case "$mode" in
  grpc)
    echo grpc > "$MODE_FILE"
    exec dagster api grpc -h 0.0.0.0 -p "$GRPC_PORT" -m "$MODULE"
    ;;
  webserver)
    prepare_home
    echo webserver > "$MODE_FILE"
    exec dagster-webserver -h 0.0.0.0 -p "$PORT" -w "$APP_DIR/workspace.yaml"
    ;;
  daemon)
    prepare_home
    echo daemon > "$MODE_FILE"
    exec dagster-daemon run -w "$APP_DIR/workspace.yaml"
    ;;
  all-in-one)
    prepare_home
    echo all-in-one > "$MODE_FILE"
    dagster-daemon run -w "$APP_DIR/workspace.yaml" &
    daemon_pid=$!
    dagster-webserver -h 0.0.0.0 -p "$PORT" -w "$APP_DIR/workspace.yaml" &
    webserver_pid=$!
    # Stop both on a signal, and stop the container when either dies (so the orchestrator restarts it).
    status=1
    trap 'status=0; kill -TERM "$daemon_pid" "$webserver_pid" 2>/dev/null || true' INT TERM
    while kill -0 "$daemon_pid" 2>/dev/null && kill -0 "$webserver_pid" 2>/dev/null; do
      sleep 1 || true  # a signal interrupting sleep must reach the trap, not `set -e`
    done
    kill -TERM "$daemon_pid" "$webserver_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
    wait "$webserver_pid" 2>/dev/null || true
    exit "$status"
    ;;
  healthcheck)
    case "$(cat "$MODE_FILE" 2>/dev/null || echo none)" in
      grpc) exec dagster api grpc-health-check -p "$GRPC_PORT" ;;
      webserver | all-in-one)
        exec python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)" \
          "http://127.0.0.1:$PORT/server_info" ;;
      *) exit 0 ;;  # daemon, or a one-off command: nothing to probe
    esac
    ;;
  *)
    exec "$@"
    ;;
esac
