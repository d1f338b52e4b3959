#!/usr/bin/env bash
# Start a process worker on the thoughtmill pool in the foreground: it runs flow runs of the
# deployments in this checkout with its .venv.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
exec "$PREFECT" worker start --pool "$THOUGHTMILL_POOL" --type process "$@"
