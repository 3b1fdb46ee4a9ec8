#!/bin/sh
# InfluxDB 2.x set-up for PulseGate with the `influx` CLI (run once; an operator's admin token in
# INFLUX_TOKEN or the CLI's active config). The ingest never creates buckets on 2.x/3.x.
#   ORG=hospital-group RAW_DAYS=30 ./setup.sh
# NOT tested against a real InfluxDB 2.x: none is installable on the development machines (see
# docs/uplink-ingest.md, "InfluxDB 2.x and 3.x").
set -eu
ORG="${ORG:?set ORG to the organisation name}"
RAW_DAYS="${RAW_DAYS:-30}"
ROLLUP_DAYS="${ROLLUP_DAYS:-0}"          # 0 = forever
here="$(dirname "$0")"

influx bucket create --org "$ORG" --name pulsegate --retention "${RAW_DAYS}d"
if [ "$ROLLUP_DAYS" = 0 ]; then r=0; else r="${ROLLUP_DAYS}d"; fi
influx bucket create --org "$ORG" --name pulsegate_rollup --retention "$r"
raw_id="$(influx bucket list --org "$ORG" --name pulsegate --hide-headers | cut -f1)"
rollup_id="$(influx bucket list --org "$ORG" --name pulsegate_rollup --hide-headers | cut -f1)"

influx task create --org "$ORG" --file "$here/tasks/vitals_1h.flux"
influx task create --org "$ORG" --file "$here/tasks/scores_1h.flux"

# InfluxQL through the v1 compatibility API (the fleet API and the benches query with InfluxQL):
# database "pulsegate", retention policies raw / rollup, as on 1.x
influx v1 dbrp create --org "$ORG" --db pulsegate --rp raw --bucket-id "$raw_id" --default
influx v1 dbrp create --org "$ORG" --db pulsegate --rp rollup --bucket-id "$rollup_id"

# least privilege: the cloud daemon (ingest + API, one [influx] section) writes the raw bucket and
# reads both; no token with rights on anything else
influx auth create --org "$ORG" --description pulsegate-cloud --write-bucket "$raw_id" \
    --read-bucket "$raw_id" --read-bucket "$rollup_id"
echo "put the token in /etc/pulsegate/credentials/influx-token (mode 600, LoadCredential=influx-token:...)"
