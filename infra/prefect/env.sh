# Shared settings for the local Prefect scripts: sourced, not run.
# A Prefect home of this checkout's own (override PREFECT_HOME to share one), offline.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export THOUGHTMILL_ROOT="${THOUGHTMILL_ROOT:-$ROOT}"
export PREFECT_HOME="${PREFECT_HOME:-$ROOT/.prefect}"
export PREFECT_SERVER_API_HOST="${PREFECT_SERVER_API_HOST:-127.0.0.1}"
export PREFECT_SERVER_API_PORT="${PREFECT_SERVER_API_PORT:-4200}"
export PREFECT_API_URL="${PREFECT_API_URL:-http://$PREFECT_SERVER_API_HOST:$PREFECT_SERVER_API_PORT/api}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export DO_NOT_TRACK=1
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TOKENIZERS_PARALLELISM=false
export THOUGHTMILL_POOL="${THOUGHTMILL_POOL:-thoughtmill}"
export THOUGHTMILL_SCHEDULES_ACTIVE="${THOUGHTMILL_SCHEDULES_ACTIVE:-true}"
PREFECT="$ROOT/.venv/bin/prefect"
export PATH="$ROOT/.venv/bin:$PATH"
