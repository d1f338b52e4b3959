#!/usr/bin/env bash
# Start a local Prefect server (SQLite under $PREFECT_HOME) in the foreground; Ctrl-C stops it.
set -euo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p "$PREFECT_HOME"
exec "$PREFECT" server start --host "$PREFECT_SERVER_API_HOST" --port "$PREFECT_SERVER_API_PORT" --no-ui "$@"
