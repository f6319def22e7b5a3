#!/usr/bin/env bash
# The whole story on one Debian machine (as root), each step checked: two network namespaces, a
# server whose tcp/2222 is closed by spaknockd's nftables table; a scan finds it filtered; one knock
# from spaknock (and one from the stock fwknop client) opens it for the client's address only; a
# session made during the grant carries on after the kernel has removed the rule; an email arrives
# on open and on close; then everything is removed again.
#
#   bash scripts/demo.sh [--pcap] [--installed]
#     --pcap       spaknockd sniffs with libpcap: no socket on udp/62201 at all
#     --installed  use the spaknock and spaknockd on PATH (the Debian package), not dist/
# DEMO_TIMEOUT (default 6) is the grant's length in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "demo: FAILED: $*" >&2
  exit 1
}

capture=udp installed=0
for arg in "$@"; do
  case "$arg" in
    --pcap) capture=pcap ;;
    --installed) installed=1 ;;
    *) echo "usage: bash scripts/demo.sh [--pcap] [--installed]" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: run as root (it creates network namespaces and firewall rules)" >&2
  exit 2
fi
need=()
for c in nft ip fwknop ss; do command -v "$c" >/dev/null || need+=("$c"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing what is missing (${need[*]}): nftables iproute2 fwknop-client"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables iproute2 fwknop-client >/dev/null
fi
[ -d node_modules/smtp-server ] || npm ci --no-audit --no-fund >/dev/null
if [ "$installed" -eq 1 ]; then
  command -v spaknock >/dev/null && command -v spaknockd >/dev/null ||
    fail "--installed: spaknock and spaknockd are not on PATH (apt-get install ./spaknock_*.deb)"
  SPAKNOCK=(spaknock); SPAKNOCKD=(spaknockd)
else
  [ -x dist/cli/main.js ] || npm run build >/dev/null
  SPAKNOCK=(node dist/cli/main.js); SPAKNOCKD=("$PWD/dist/spaknockd/main.js")
fi
if [ "$capture" = pcap ]; then
  "${SPAKNOCKD[@]}" --help >/dev/null || fail "spaknockd does not run"
  node -e "require('cap')" 2>/dev/null || [ "$installed" -eq 1 ] ||
    fail "--pcap needs the optional 'cap' module: apt-get install libpcap-dev, then npm ci"
fi

TIMEOUT=${DEMO_TIMEOUT:-6}
id=$$; SRV="spkdemo-$id-srv"; CLI="spkdemo-$id-cli"; SRV_IF="spkd${id}s"; CLI_IF="spkd${id}c"
SRV_IP=198.18.250.1; CLI_IP=198.18.250.2; OTHER_IP=198.18.250.3; PORT=2222; SMTP_PORT=2525
TABLE=spaknockdemo
work=$(mktemp -d /tmp/spkdemo.XXXXXX)
chmod 700 "$work"
mkdir -m 700 "$work/mail"
pids=()
cleanup() {
  exec 4>&- 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  ip netns del "$SRV" 2>/dev/null || true
  ip netns del "$CLI" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }

# Waits (at most $3 seconds) until file $1 has $4 (default 1) lines matching the regex $2.
wait_for() {
  local file=$1 re=$2 secs=$3 count=${4:-1} i n
  for ((i = 0; i < secs * 10; i++)); do
    n=$(grep -cE -- "$re" "$file" 2>/dev/null || true)
    [ "${n:-0}" -ge "$count" ] && return 0
    sleep 0.1
  done
  return 1
}

# spaknockd's log lines not shown yet, indented.
log_seen=0
show_log() {
  local total
  total=$(wc -l <"$work/spaknockd.log")
  if [ "$total" -gt "$log_seen" ]; then
    sed -n "$((log_seen + 1)),${total}p" "$work/spaknockd.log" | sed 's/^/   spaknockd | /'
  fi
  log_seen=$total
}

# The session's output lines not shown yet, indented.
session_seen=0
show_session() {
  local total
  total=$(wc -l <"$work/session.out")
  if [ "$total" -gt "$session_seen" ]; then
    sed -n "$((session_seen + 1)),${total}p" "$work/session.out" | sed 's/^/   /'
  fi
  session_seen=$total
}

# Probe tcp/$PORT from address $1 and check the answer is $2 (open or filtered).
probe() {
  local from=$1 want=$2 status=0
  ip netns exec "$CLI" node scripts/demo/probe.mjs "$SRV_IP" "$PORT" "$from" >"$work/probe.out" || status=$?
  sed 's/^/   /' "$work/probe.out"
  case "$want:$status" in
    open:0 | filtered:3) ;;
    *) fail "tcp/$PORT from $from should be $want: $(cat "$work/probe.out")" ;;
  esac
}

# Wait for mail number $1 and print it as a person reads it.
show_mail() {
  local n=$1 file="$work/mail/mail-$1.txt"
  wait_for "$file" '^Subject:' 10 || fail "email $n (expected: $2) did not arrive within 10 s"
  grep -qF -- "$2" "$file" || fail "email $n is not about '$2': $(grep '^Subject:' "$file")"
  echo "   ---- email $n received by the demo's SMTP server on the server's loopback ----"
  sed 's/^/   | /' "$file"
}

say "two hosts in network namespaces: client $CLI_IP (and a second address, $OTHER_IP), server $SRV_IP"
ip netns add "$SRV"
ip netns add "$CLI"
ip link add "$SRV_IF" netns "$SRV" type veth peer name "$CLI_IF" netns "$CLI"
ip -n "$SRV" addr add "$SRV_IP/24" dev "$SRV_IF"
ip -n "$CLI" addr add "$CLI_IP/24" dev "$CLI_IF"
ip -n "$CLI" addr add "$OTHER_IP/24" dev "$CLI_IF"
for ns in "$SRV" "$CLI"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" link set "$SRV_IF" up
ip -n "$CLI" link set "$CLI_IF" up

say "on the server: a service on tcp/$PORT, and an SMTP server on 127.0.0.1:$SMTP_PORT for spaknockd's mail"
ip netns exec "$SRV" node scripts/demo/service.mjs "$PORT" &
pids+=($!)
ip netns exec "$SRV" node scripts/demo/smtp.mjs 127.0.0.1 "$SMTP_PORT" "$work/mail" >"$work/smtp.out" 2>&1 &
pids+=($!)
wait_for "$work/smtp.out" 'listening' 10 || fail "the demo's SMTP server did not start: $(head -n 1 "$work/smtp.out")"
sed 's/^/   /' "$work/smtp.out"

KEY=$(head -c 32 /dev/urandom | base64 -w0)
HMAC=$(head -c 64 /dev/urandom | base64 -w0)
umask 077
if [ "$capture" = pcap ]; then
  capture_conf="ENABLE_UDP_SERVER       N
PCAP_INTF               $SRV_IF"
else
  capture_conf="ENABLE_UDP_SERVER       Y"
fi
cat >"$work/fwknopd.conf" <<CONF
# fwknop's format; see config/fwknopd.conf.sample for every keyword
FIREWALL_BACKEND        nftables
NFT_TABLE               $TABLE
DIGEST_FILE             $work/digest.cache
FWKNOP_RUN_DIR          $work
$capture_conf
EMAIL_ADDRESSES         ops@example.test
SMTP_HOST               127.0.0.1
SMTP_PORT               $SMTP_PORT
SMTP_FROM               spaknockd@server.example.test
CONF
cat >"$work/access.conf" <<CONF
SOURCE                  ANY
KEY_BASE64              $KEY
HMAC_KEY_BASE64         $HMAC
OPEN_PORTS              tcp/$PORT
FW_ACCESS_TIMEOUT       $TIMEOUT
REQUIRE_SOURCE_ADDRESS  Y
CONF
cat >"$work/fwknoprc" <<CONF
[demo]
SPA_SERVER              $SRV_IP
ACCESS                  tcp/$PORT
ALLOW_IP                $CLI_IP
KEY_BASE64              $KEY
HMAC_KEY_BASE64         $HMAC
USE_HMAC                Y
CONF

if [ "$capture" = pcap ]; then
  say "spaknockd starts on the server, sniffing $SRV_IF with libpcap; its nftables table closes tcp/$PORT"
else
  say "spaknockd starts on the server (udp/62201, never answers); its nftables table closes tcp/$PORT"
fi
ip netns exec "$SRV" "${SPAKNOCKD[@]}" -f -c "$work/fwknopd.conf" -a "$work/access.conf" >"$work/spaknockd.log" 2>&1 &
spaknockd_pid=$!
pids+=("$spaknockd_pid")
if ! wait_for "$work/spaknockd.log" 'spaknockd started' 15; then
  show_log
  fail "spaknockd did not start"
fi
show_log
if [ "$capture" = pcap ]; then
  if [ -n "$(ip netns exec "$SRV" ss -Hunl 'sport = :62201')" ]; then fail "a socket listens on udp/62201 in pcap mode"; fi
  echo "   ss -unl on the server: no socket on udp/62201; the packet is seen on $SRV_IF before any firewall"
fi

say "1. a scan of tcp/$PORT from the client finds it filtered"
probe "$CLI_IP" filtered

say "2. knock: spaknock sends one SPA packet (keys from the 0600 rc file, never on a command line)"
HOME=$work ip netns exec "$CLI" "${SPAKNOCK[@]}" -n demo --rc-file "$work/fwknoprc" -U demo
wait_for "$work/spaknockd.log" "^.*add inet $TABLE $CLI_IP " 10 || { show_log; fail "spaknockd opened nothing"; }
show_log
probe "$CLI_IP" open
echo "   the grant is for $CLI_IP only; the client's second address is still refused:"
probe "$OTHER_IP" filtered
ip netns exec "$SRV" "${SPAKNOCKD[@]}" -c "$work/fwknopd.conf" -a "$work/access.conf" --fw-list | sed 's/^/   /'
show_mail 1 "opened $CLI_IP for demo"

say "3. a long-lived session (as an ssh login would be) is opened from $CLI_IP during the grant"
mkfifo "$work/session.in"
ip netns exec "$CLI" node scripts/demo/session.mjs "$SRV_IP" "$PORT" "$CLI_IP" <"$work/session.in" >"$work/session.out" 2>&1 &
pids+=($!)
exec 4>"$work/session.in"
echo "typed during the grant" >&4
wait_for "$work/session.out" '^session (exchange 1|lost)' 10 || fail "the session did not start"
show_session
if grep -q '^session lost' "$work/session.out"; then fail "the session was lost"; fi

say "4. the stock fwknop 2.6.10 client knocks from the same rc file (the grant is refreshed)"
HOME=$work ip netns exec "$CLI" fwknop --rc-file "$work/fwknoprc" -n demo --no-save-args >"$work/fwknop.out" 2>&1 ||
  fail "the fwknop client failed: $(tail -n 1 "$work/fwknop.out")"
wait_for "$work/spaknockd.log" "^.*add inet $TABLE $CLI_IP " 10 2 || { show_log; fail "spaknockd ignored the fwknop client's knock"; }
show_log
probe "$CLI_IP" open
show_mail 2 "opened $CLI_IP for"

say "5. wait for the ${TIMEOUT}s grant to end (the kernel removes the set element; spaknockd reports it)"
wait_for "$work/spaknockd.log" "removed inet $TABLE $CLI_IP .*timeout exceeded" $((TIMEOUT + 15)) ||
  { show_log; fail "the grant did not end"; }
show_log
show_mail 3 "closed $CLI_IP for"
echo "   a new connection from $CLI_IP is filtered again:"
probe "$CLI_IP" filtered
echo "   the session opened during the grant still exchanges data (conntrack: established):"
echo "typed after the rule is gone" >&4
wait_for "$work/session.out" '^session (exchange 2|lost)' 10 || fail "the session got no answer after the grant ended"
show_session
if grep -q '^session lost' "$work/session.out"; then fail "the session was lost when the grant ended"; fi
exec 4>&-
wait_for "$work/session.out" '^session closed' 10 || true
show_session

say "6. done: spaknockd stops, the namespaces (and its nftables table with them) are removed"
kill "$spaknockd_pid"
for _ in $(seq 50); do kill -0 "$spaknockd_pid" 2>/dev/null || break; sleep 0.1; done
show_log
cleanup
trap - EXIT
for ns in "$SRV" "$CLI"; do
  if ip netns list | grep -qw -- "$ns"; then fail "namespace $ns is still there"; fi
done
if [ -e "$work" ]; then fail "$work is still there"; fi
echo "   nothing left: no namespace, no process, no file of the demo"
