#!/usr/bin/env bash
# make test-openai-sdk: the official OpenAI JavaScript SDK (npm openai,
# pinned in package.json / package-lock.json, installed into the git-ignored
# node_modules/ here) against `magma serve` on a random tiny checkpoint.
# The server listens on a free loopback port, serves the model as
# "tiny,magma" (--served-model-name) and is stopped on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../../bin/magma}
cd "$here"

want=$(node -p 'require("./package.json").dependencies.openai')
have=$(node -p 'try { require("./node_modules/openai/package.json").version } catch { "" }')
if [ "$have" != "$want" ]; then
	npm ci --no-audit --no-fund --loglevel=error
fi

tmp=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

"$BIN" init --preset tiny --out "$tmp/tiny" >/dev/null
"$BIN" serve --model "$tmp/tiny" --addr 127.0.0.1:0 --served-model-name tiny,magma --max-batch 2 2>"$tmp/serve.log" &
pid=$!

# The listening address is logged before the model loads; /health says when it has.
addr=
for _ in $(seq 1 600); do
	addr=$(sed -n 's/.*msg="listening.* addr=\([0-9.:]*\).*/\1/p' "$tmp/serve.log" | head -n1)
	[ -n "$addr" ] && break
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/serve.log"; echo "magma serve exited"; exit 1; }
	sleep 0.1
done
[ -n "$addr" ] || { cat "$tmp/serve.log"; echo "magma serve did not report its address"; exit 1; }
node -e '
const url = process.argv[1];
const deadline = Date.now() + 120000;
(async () => {
  for (;;) {
    try { if ((await fetch(url)).status === 200) return; } catch {}
    if (Date.now() > deadline) { console.error("magma serve not ready after 120 s"); process.exit(1); }
    await new Promise((r) => setTimeout(r, 200));
  }
})();' "http://$addr/health" || { cat "$tmp/serve.log"; exit 1; }

status=0
node check.mjs "http://$addr/v1" || status=$?
if [ "$status" -ne 0 ]; then
	echo "--- magma serve log"
	cat "$tmp/serve.log"
fi
exit "$status"
