#!/usr/bin/env bash
# Wait for the server, create the process work pool (idempotent) and register prefect.yaml's
# deployments (curate/demo, curate/math). THOUGHTMILL_SCHEDULES_ACTIVE=false registers the
# math schedule paused (tests, machines that must not start nightly runs).
set -euo pipefail
source "$(dirname "$0")/env.sh"
for _ in $(seq 1 120); do
  curl -fsS "$PREFECT_API_URL/health" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "$PREFECT_API_URL/health" >/dev/null || { echo "no Prefect server at $PREFECT_API_URL" >&2; exit 1; }
"$PREFECT" work-pool inspect "$THOUGHTMILL_POOL" >/dev/null 2>&1 \
  || "$PREFECT" work-pool create "$THOUGHTMILL_POOL" --type process
cd "$ROOT"
"$PREFECT" --no-prompt deploy --all --prefect-file "$ROOT/prefect.yaml"
