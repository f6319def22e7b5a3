#!/usr/bin/env bash
# CI, as root on a Debian machine, after `npm ci`: build the .deb, install it the way an admin
# would (apt-get install ./spaknock_*.deb), run the demo against the installed spaknock and
# spaknockd, then remove and purge it and check that nothing of it is left: no file but the
# conffiles after remove, nothing at all after purge, no nftables table or iptables chain.
# The firewall objects are made and checked inside a network namespace of this script's own.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "ci-package: FAILED: $*" >&2
  exit 1
}
step() { printf '\n== ci-package: %s\n' "$*"; }
[ "$(id -u)" -eq 0 ] || fail "run as root"
dpkg-query -W -f='${Status}' spaknock 2>/dev/null | grep -qx 'install ok installed' &&
  fail "a spaknock package is already installed; this check needs a machine without it"

NS="spkpkg-$$"
work=$(mktemp -d /tmp/spkpkg.XXXXXX)
chmod 700 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

step "build"
deb=$(bash scripts/package.sh)
[ -f "$deb" ] || fail "scripts/package.sh made no package"
dpkg-deb -I "$deb" | sed -n 's/^ \(Package\|Version\|Architecture\|Depends\):/   \1:/p'

step "install with apt-get install ./$deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$deb" >"$work/apt.out" 2>&1 ||
  fail "apt-get install: $(grep -E '^E:' "$work/apt.out" | head -n 1)"
dpkg -L spaknock | sort >"$work/files"
dpkg-query -W -f='${Conffiles}\n' spaknock | awk 'NF { print $1 }' | sort >"$work/conffiles"
spaknock --version
spaknockd --version
for f in /usr/share/man/man1/spaknock.1.gz /usr/share/man/man8/spaknockd.8.gz \
  /usr/share/bash-completion/completions/spaknock /usr/share/bash-completion/completions/spaknockd \
  /lib/systemd/system/spaknockd.service; do
  [ -f "$f" ] || fail "$f is not installed"
done
grep -q '^ExecStart=/usr/bin/spaknockd ' /lib/systemd/system/spaknockd.service ||
  fail "the unit does not start /usr/bin/spaknockd"
[ "$(stat -c %a /etc/spaknock)" = 700 ] || fail "/etc/spaknock is not 0700"
for f in $(cat "$work/conffiles"); do
  [ "$(stat -c %a "$f")" = 600 ] || fail "$f is not 0600"
done
readable=$(find /etc/spaknock /var/lib/spaknock /run/spaknock -perm /o+r 2>/dev/null || true)
[ -z "$readable" ] || fail "world-readable after install: $readable"
echo "   /etc/spaknock 0700, conffiles 0600, nothing world-readable"

step "the demo with the installed binaries"
bash scripts/demo.sh --installed
if [ -d /usr/lib/spaknock/node_modules/cap ]; then
  step "the demo with the installed binaries, pcap capture"
  bash scripts/demo.sh --installed --pcap
fi

step "spaknockd's default table and chain, made in namespace $NS, for the package's removal to take"
ip netns add "$NS"
ip -n "$NS" link set lo up
key=$(head -c 32 /dev/urandom | base64 -w0)
hmac=$(head -c 64 /dev/urandom | base64 -w0)
for backend in nftables iptables; do
  mkdir -m 700 "$work/$backend"
  printf 'FIREWALL_BACKEND %s\nDIGEST_FILE %s/digest.cache\nFWKNOP_RUN_DIR %s\nUDPSERV_ADDRESS 127.0.0.1\n' \
    "$backend" "$work/$backend" "$work/$backend" >"$work/$backend/fwknopd.conf"
  printf 'SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nOPEN_PORTS tcp/22\n' "$key" "$hmac" \
    >"$work/$backend/access.conf"
  chmod 600 "$work/$backend"/*.conf
  ip netns exec "$NS" spaknockd -f -c "$work/$backend/fwknopd.conf" -a "$work/$backend/access.conf" \
    >"$work/$backend/log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do grep -q 'spaknockd started' "$work/$backend/log" && break; sleep 0.1; done
  grep -q 'spaknockd started' "$work/$backend/log" || fail "spaknockd ($backend) did not start: $(tail -n 1 "$work/$backend/log")"
  # The package's batched UDP reader (/usr/lib/spaknock/native) is found and used.
  grep -q 'spaknockd started: .*batched reads (recvmmsg)' "$work/$backend/log" ||
    fail "the installed spaknockd does not read in batches: $(grep 'spaknockd started' "$work/$backend/log")"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done
ip netns exec "$NS" nft list table inet spaknock >/dev/null 2>&1 ||
  fail "spaknockd left no table inet spaknock to test the removal with"
ip netns exec "$NS" iptables -w -S SPAKNOCK_INPUT >/dev/null 2>&1 ||
  fail "spaknockd left no chain SPAKNOCK_INPUT to test the removal with"
echo "   table inet spaknock and chain SPAKNOCK_INPUT are there"

step "apt-get remove (in $NS, so that the maintainer scripts flush that namespace's firewall)"
ip netns exec "$NS" env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq spaknock >"$work/apt.out" 2>&1 ||
  fail "apt-get remove: $(grep -E '^E:' "$work/apt.out" | head -n 1)"
if ip netns exec "$NS" nft list table inet spaknock >/dev/null 2>&1; then fail "table inet spaknock is left"; fi
if ip netns exec "$NS" iptables -w -S SPAKNOCK_INPUT >/dev/null 2>&1; then fail "chain SPAKNOCK_INPUT is left"; fi
if ip netns exec "$NS" iptables -w -S INPUT | grep -q SPAKNOCK; then fail "a jump to SPAKNOCK_INPUT is left"; fi
while read -r f; do
  [ -d "$f" ] && continue # /, /usr, /lib (a symlink with usrmerge): not the package's own
  if grep -qxF "$f" "$work/conffiles"; then
    [ -f "$f" ] || fail "conffile $f was removed by remove (only purge may)"
  elif [ -f "$f" ] || [ -L "$f" ]; then
    fail "$f is left after remove"
  fi
done <"$work/files"
for d in /usr/lib/spaknock /usr/share/doc/spaknock; do
  if [ -e "$d" ]; then fail "$d is left after remove"; fi
done
echo "   no table, no chain, no file but the conffiles"

step "apt-get purge"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq spaknock >"$work/apt.out" 2>&1 ||
  fail "apt-get purge: $(grep -E '^E:' "$work/apt.out" | head -n 1)"
if dpkg-query -W -f='${Status}' spaknock 2>/dev/null | grep -qv 'not-installed'; then
  fail "dpkg still knows spaknock: $(dpkg-query -W -f='${Status}' spaknock)"
fi
while read -r f; do
  [ -d "$f" ] && continue
  if [ -f "$f" ] || [ -L "$f" ]; then fail "$f is left after purge"; fi
done <"$work/files"
for d in /etc/spaknock /var/lib/spaknock /run/spaknock /usr/lib/spaknock; do
  if [ -e "$d" ]; then fail "$d is left after purge"; fi
done
echo "   nothing of spaknock is left"
