#!/usr/bin/env bash
# make test-gguf-npm / make test-llamacpp: our GGUF files read by other
# implementations. npm packages (pinned in package.json / package-lock.json)
# are installed into the git-ignored node_modules/ here; node-llama-cpp's
# prebuilt llama.cpp binaries are used as shipped (nothing compiled or
# downloaded at run time).
#   run.sh npm       npm @huggingface/gguf parses a file of every value and
#                    tensor type (scripts/gguf/fixture) and `magma export gguf`
#                    files of a random tiny checkpoint (bf16, f32, and q8_0 /
#                    q4_k when this build can quantize): names, shapes, types
#   run.sh llamacpp  llama.cpp loads `magma export gguf` files of a random
#                    tiny checkpoint (bf16 weights) and its next-token logits
#                    for a prompt of token ids are compared with ours
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BIN=${BIN:-$repo/bin/magma}
mode=${1:?usage: run.sh npm|llamacpp}

cd "$here"
installed() { node -p "try { require('./node_modules/$1/package.json').version } catch { '' }"; }
want() { node -p "require('./package.json').dependencies['$1']"; }
if [ "$(installed @huggingface/gguf)" != "$(want @huggingface/gguf)" ] || [ "$(installed node-llama-cpp)" != "$(want node-llama-cpp)" ] ||
	[ "$(installed @node-llama-cpp/linux-x64)" != "$(want @node-llama-cpp/linux-x64)" ]; then
	# --ignore-scripts: node-llama-cpp's postinstall would look for a build;
	# --omit=optional: only the CPU prebuilt (linux-x64) is wanted
	npm ci --no-audit --no-fund --loglevel=error --ignore-scripts --omit=optional
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

case "$mode" in
npm)
	(cd "$repo" && go run ./scripts/gguf/fixture "$tmp/fixture.gguf" "$tmp/fixture.json")
	node check_npm.mjs fixture "$tmp/fixture.gguf" "$tmp/fixture.json"
	"$BIN" init --preset tiny --out "$tmp/tiny" >/dev/null
	for type in bf16 f32 q8_0 q4_k; do
		if ! "$BIN" export gguf --model "$tmp/tiny" --text-only --type "$type" --out "$tmp/tiny-$type.gguf" >"$tmp/export.log" 2>&1; then
			if grep -q "quantizer" "$tmp/export.log"; then
				echo "skip $type: $(cat "$tmp/export.log")"
				continue
			fi
			cat "$tmp/export.log"
			exit 1
		fi
		node check_npm.mjs export "$tmp/tiny-$type.gguf" "$tmp/tiny/config.json" "$type"
	done
	;;
llamacpp)
	# bf16 weights, so that the bf16 file holds exactly our weights; the f32
	# file of the same weights isolates the file's layout (names, Q/K
	# permutation, hyperparameters) from llama.cpp's bf16 arithmetic
	"$BIN" init --preset tiny --dtype bf16 --out "$tmp/tiny" >/dev/null
	"$BIN" export gguf --model "$tmp/tiny" --text-only --type bf16 --out "$tmp/tiny-bf16.gguf" >/dev/null
	"$BIN" export gguf --model "$tmp/tiny" --text-only --type f32 --out "$tmp/tiny-f32.gguf" >/dev/null
	ids=128000,128006,882,128007,271,9906,1917,11,1268,527,499,30,128009,128006,78191,128007,271
	"$BIN" generate --model "$tmp/tiny" --prompt-ids "$ids" --max-new-tokens 1 --logits-out "$tmp/ours.safetensors" >/dev/null
	node llamacpp_logits.mjs "$ids" \
		"$tmp/tiny-f32.gguf" "$tmp/ours.safetensors" "${MAX_REL_F32:-1e-5}" \
		"$tmp/tiny-bf16.gguf" "$tmp/ours.safetensors" "${MAX_REL_BF16:-1e-3}"
	;;
*)
	echo "usage: run.sh npm|llamacpp" >&2
	exit 2
	;;
esac
