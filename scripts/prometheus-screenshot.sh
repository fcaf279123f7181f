#!/usr/bin/env bash
# Screenshot of Prometheus's graph page comparing a canary with its primary (the README's picture).
#   scripts/prometheus-screenshot.sh [PROMETHEUS_URL] [OUT.png] [RANGE]
# Needs Chromium (Debian: apt-get install -y chromium). Start the local stack first, promote a canary and
# send some traffic (README "Local stack").
set -euo pipefail

url=${1:-http://localhost:9090}
out=${2:-docs/images/prometheus-canary.png}
range=${3:-15m}

encode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

answers='sum by (version, role) (rate(modelfn_predictions_total{outcome="ok"}[1m]))'
# Mean top score in percent (the classic graph page prints fractions near 1 with 15 digits).
confidence='100 * sum by (version, role) (rate(modelfn_prediction_confidence_sum[1m])) / sum by (version, role) (rate(modelfn_prediction_confidence_count[1m]))'
page="$url/graph?g0.expr=$(encode "$answers")&g0.tab=0&g0.range_input=$range"
page+="&g1.expr=$(encode "$confidence")&g1.tab=0&g1.range_input=$range"

mkdir -p "$(dirname "$out")"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,1700 \
  --virtual-time-budget=10000 --screenshot="$out" "$page" 2>/dev/null
echo "wrote $out"
