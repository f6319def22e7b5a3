#!/usr/bin/env bash
# Builds build/spaknock_<version>_<arch>.deb with dpkg-deb (no debhelper) and prints its path:
#   /usr/lib/spaknock/spaknock.mjs                  the client, one file bundled by esbuild
#   /usr/lib/spaknock/spaknockd/main.mjs, chunks/   the daemon (scripts/bundle-daemon.mjs)
#   /usr/lib/spaknock/native/udp-batch.node         the daemon's batched UDP reader (native)
#   /usr/lib/spaknock/node_modules/cap              libpcap binding, for pcap capture (native:
#                                                   why the package is per architecture, and
#                                                   tied to the Node major version that built it)
#   /usr/bin/spaknock, /usr/bin/spaknockd           symlinks to the bundles
#   /lib/systemd/system/spaknockd.service           config/spaknockd.service, ExecStart adjusted
#   /etc/spaknock/fwknopd.conf, access.conf         the samples, conffiles, 0600 in a 0700 dir
#   man pages, bash completion, README and copyright
#   /usr/lib/spaknock/node                          the Node.js that ran this build (official
#                                                   binaries: glibc and libstdc++ only), because
#                                                   Debian 12's own nodejs is 18, below engines
# SPAKNOCK_DEB_NODE=system ships no node: the bundles then run /usr/bin/node and the package
# Depends: nodejs (>= the version package.json's engines asks for).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "package: $*" >&2
  exit 1
}
command -v dpkg-deb >/dev/null || fail "dpkg-deb is not installed (apt-get install dpkg)"
[ -x node_modules/.bin/esbuild ] || fail "esbuild is missing: run npm ci first"

version=$(node -p 'require("./package.json").version')
node_min=$(node -p 'const m = /^>=\s*([0-9.]+)$/.exec(require("./package.json").engines.node); m ? m[1] : ""')
[ -n "$node_min" ] || fail 'package.json engines.node must read ">=X.Y" (it becomes Depends: nodejs (>= X.Y))'
arch=$(dpkg --print-architecture)
node_mode=${SPAKNOCK_DEB_NODE:-bundled}
case "$node_mode" in bundled | system) ;; *) fail "SPAKNOCK_DEB_NODE is bundled or system, not $node_mode" ;; esac
build_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$build_major" -ge "${node_min%%.*}" ] ||
  fail "this is Node $build_major, below package.json's >= $node_min: build with Node ${node_min%%.*}"
mkdir -p build
out="build/spaknock_${version}_${arch}.deb"

stage=$(mktemp -d /tmp/spaknock-deb.XXXXXX)
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage"
umask 022

lib="$stage/usr/lib/spaknock"
mkdir -p "$lib" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/usr/share/man/man1" \
  "$stage/usr/share/man/man8" "$stage/usr/share/bash-completion/completions" \
  "$stage/usr/share/doc/spaknock" "$stage/DEBIAN"

# ESM bundles; a few bundled CommonJS modules call require(), which ESM lacks. The optional
# `cap` binding is loaded with createRequire at run time, so esbuild leaves it out and it is
# found in /usr/lib/spaknock/node_modules.
banner='import { createRequire as __spaknockCreateRequire } from "node:module"; const require = __spaknockCreateRequire(import.meta.url);'
if [ "$node_mode" = bundled ]; then
  interpreter=/usr/lib/spaknock/node
  install -m 755 "$(node -p process.execPath)" "$lib/node"
  depends="libc6 (>= 2.28), libstdc++6, libgcc-s1"
else
  interpreter=/usr/bin/node
  depends="nodejs (>= $node_min)"
fi
node_modules/.bin/esbuild cli/main.ts --bundle --platform=node --format=esm \
  --target="node${node_min%%.*}" --legal-comments=none --log-level=warning \
  --banner:js="$banner" --outfile="$lib/spaknock.mjs"
# Debian: an interpreter by its path, not through env.
sed -i "1s|^#!/usr/bin/env node\$|#!$interpreter|" "$lib/spaknock.mjs"
head -n 1 "$lib/spaknock.mjs" | grep -qxF "#!$interpreter" || sed -i "1i #!$interpreter" "$lib/spaknock.mjs"
chmod 755 "$lib/spaknock.mjs"
ln -s ../lib/spaknock/spaknock.mjs "$stage/usr/bin/spaknock"
# The daemon as `npm run build` makes it (relay and email code in chunks loaded on first use),
# with its V8 flag after the interpreter's path.
node scripts/bundle-daemon.mjs --outdir "$lib/spaknockd" --out-extension .mjs --interpreter "$interpreter"
head -n 1 "$lib/spaknockd/main.mjs" | grep -q "^#!$interpreter" || fail "spaknockd's bundle has no #!$interpreter line"
ln -s ../lib/spaknock/spaknockd/main.mjs "$stage/usr/bin/spaknockd"

if [ -f node_modules/cap/build/Release/cap.node ]; then
  cap="$lib/node_modules/cap"
  mkdir -p "$cap/build/Release"
  cp -r node_modules/cap/lib node_modules/cap/package.json node_modules/cap/LICENSE "$cap/"
  install -m 644 node_modules/cap/build/Release/cap.node "$cap/build/Release/cap.node"
  # A native addon is built for one Node ABI (npm ci built it for this node): with the system's
  # node, the package must hold to that major version.
  [ "$node_mode" = bundled ] || depends="$depends, nodejs (<< $((build_major + 1)))"
  depends="$depends, libpcap0.8"
else
  echo "package: node_modules/cap is not built (apt-get install libpcap-dev; npm ci): no pcap capture in this package" >&2
fi

# spaknockd's batched UDP reader (native/udp-batch.c, Node-API: any Node from 22 on), found by
# the bundle beside its own directory; without it the daemon reads with node:dgram.
if [ -f dist/native/udp-batch.node ]; then
  mkdir -p "$lib/native"
  install -m 644 dist/native/udp-batch.node "$lib/native/udp-batch.node"
else
  echo "package: dist/native/udp-batch.node is not built (npm run build, with a C compiler): spaknockd will read with node:dgram" >&2
fi

sed -e 's|^ExecStart=/usr/bin/node [^/]*/opt/spaknock/dist/spaknockd/main.js |ExecStart=/usr/bin/spaknockd |' \
  config/spaknockd.service >"$stage/lib/systemd/system/spaknockd.service"
grep -q '^ExecStart=/usr/bin/spaknockd ' "$stage/lib/systemd/system/spaknockd.service" ||
  fail "config/spaknockd.service: ExecStart is not the expected /usr/bin/node /opt/spaknock/... line"
chmod 644 "$stage/lib/systemd/system/spaknockd.service"

install -d -m 700 "$stage/etc/spaknock"
install -m 600 config/fwknopd.conf.sample "$stage/etc/spaknock/fwknopd.conf"
install -m 600 config/access.conf.sample "$stage/etc/spaknock/access.conf"

for page in packaging/man/*.[18]; do
  section=${page##*.}
  sed "s/@VERSION@/$version/g" "$page" | gzip -9n >"$stage/usr/share/man/man$section/$(basename "$page").gz"
done
install -m 644 packaging/bash-completion/spaknock packaging/bash-completion/spaknockd \
  "$stage/usr/share/bash-completion/completions/"
install -m 644 README.md "$stage/usr/share/doc/spaknock/README.md"
install -m 644 packaging/debian/copyright "$stage/usr/share/doc/spaknock/copyright"

install -m 755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
install -m 644 packaging/debian/conffiles "$stage/DEBIAN/conffiles"
installed_kb=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@DEPENDS@/$depends/" \
  -e "s/@INSTALLED_SIZE@/$installed_kb/" packaging/debian/control >"$stage/DEBIAN/control"

dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "$out"
