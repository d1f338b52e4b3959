#!/usr/bin/env bash
# Debian's headless-capable Chromium for the trace inspector's browser test (tests/test_inspect.py).
# Idempotent: does nothing when /usr/bin/chromium exists. The test drives Chromium over the
# DevTools protocol (a websocket), so no chromedriver and no browser download is needed; the
# Liberation fonts make screenshots legible. Uses sudo when not root.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-liberation
/usr/bin/chromium --version
