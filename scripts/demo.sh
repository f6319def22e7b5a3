#!/usr/bin/env bash
# The main job, end to end, on one Debian machine (as root): two network namespaces, a server
# whose tcp/22-style port is closed by spaknockd's nftables table, a knock with spaknock, the port
# open for that address only, then closed again by the kernel when the grant times out.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then echo "demo: run as root (it creates network namespaces and firewall rules)" >&2; exit 2; fi
need=()
for c in nft ip fwknop; do command -v "$c" >/dev/null || need+=("$c"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing what is missing: nftables iproute2 fwknop-client"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables iproute2 fwknop-client >/dev/null
fi
[ -x dist/cli/main.js ] || { [ -d node_modules ] || npm ci --no-audit --no-fund; npm run build >/dev/null; }

TIMEOUT=${DEMO_TIMEOUT:-5}
id=$$; SRV="spkdemo-$id-srv"; CLI="spkdemo-$id-cli"
SRV_IP=198.18.250.1; CLI_IP=198.18.250.2; PORT=2222
work=$(mktemp -d /tmp/spkdemo.XXXXXX); chmod 700 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.2
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  ip netns del "$SRV" 2>/dev/null || true; ip netns del "$CLI" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
try_connect() {
  if ip netns exec "$CLI" timeout 2 bash -c "exec 3<>/dev/tcp/$SRV_IP/$PORT" 2>/dev/null; then
    echo "   tcp connect $CLI_IP -> $SRV_IP:$PORT: CONNECTED"
  else
    echo "   tcp connect $CLI_IP -> $SRV_IP:$PORT: no answer (filtered)"
  fi
}

say "two hosts in network namespaces: client $CLI_IP, server $SRV_IP"
ip netns add "$SRV"; ip netns add "$CLI"
ip link add "spkd${id}s" netns "$SRV" type veth peer name "spkd${id}c" netns "$CLI"
ip -n "$SRV" addr add "$SRV_IP/24" dev "spkd${id}s"; ip -n "$CLI" addr add "$CLI_IP/24" dev "spkd${id}c"
for ns in "$SRV" "$CLI"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" link set "spkd${id}s" up; ip -n "$CLI" link set "spkd${id}c" up

say "a service listens on tcp/$PORT on the server"
ip netns exec "$SRV" node -e "require('net').createServer(s=>s.end('hello from the server\n')).listen($PORT)" &
pids+=($!)

KEY=$(head -c 32 /dev/urandom | base64 -w0); HMAC=$(head -c 64 /dev/urandom | base64 -w0)
umask 077
cat > "$work/fwknopd.conf" <<CONF
# fwknop's format; see config/fwknopd.conf.sample for every keyword
FIREWALL_BACKEND        nftables
NFT_TABLE               spaknockdemo
DIGEST_FILE             $work/digest.cache
FWKNOP_RUN_DIR          $work
CONF
cat > "$work/access.conf" <<CONF
SOURCE                  ANY
KEY_BASE64              $KEY
HMAC_KEY_BASE64         $HMAC
OPEN_PORTS              tcp/$PORT
FW_ACCESS_TIMEOUT       $TIMEOUT
REQUIRE_SOURCE_ADDRESS  Y
CONF
cat > "$work/fwknoprc" <<CONF
[demo]
SPA_SERVER              $SRV_IP
ACCESS                  tcp/$PORT
ALLOW_IP                $CLI_IP
KEY_BASE64              $KEY
HMAC_KEY_BASE64         $HMAC
USE_HMAC                Y
CONF

say "spaknockd starts on the server (udp/62201, silent); its nftables table closes tcp/$PORT"
ip netns exec "$SRV" node dist/agent/main.js -f -c "$work/fwknopd.conf" -a "$work/access.conf" >"$work/spaknockd.log" 2>&1 &
pids+=($!)
tail -n +1 -f "$work/spaknockd.log" | sed -u 's/^/   spaknockd | /' &
pids+=($!)
for _ in $(seq 50); do ip netns exec "$SRV" nft list table inet spaknockdemo >/dev/null 2>&1 && break; sleep 0.1; done
sleep 0.3
try_connect

say "knock: spaknock sends one SPA packet (keys from the 0600 rc file, never on a command line)"
HOME=$work ip netns exec "$CLI" node dist/cli/main.js -n demo --rc-file "$work/fwknoprc" -U demo
sleep 0.2
try_connect
ip netns exec "$SRV" node dist/agent/main.js -c "$work/fwknopd.conf" -a "$work/access.conf" --fw-list | sed 's/^/   /'

say "a stock fwknop 2.6.10 client opens the same door, from the same rc file"
HOME=$work ip netns exec "$CLI" fwknop --rc-file "$work/fwknoprc" -n demo --no-save-args >/dev/null 2>&1 && echo "   fwknop client sent its knock"
sleep 0.3
try_connect

say "wait for the ${TIMEOUT}s grant to time out (the kernel removes it, not the daemon)"
sleep $((TIMEOUT + 1))
try_connect

say "done: cleaning up namespaces and processes"
