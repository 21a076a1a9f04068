#!/usr/bin/env bash
# make test-gguf-npm / make test-llamacpp: our GGUF files read by other
# implementations. npm packages (pinned in package.json / package-lock.json)
# are installed into the git-ignored node_modules/ here; node-llama-cpp's
# prebuilt llama.cpp binaries are used as shipped (nothing compiled or
# downloaded at run time).
#   run.sh npm       npm @huggingface/gguf parses a file of every value and
#                    tensor type (scripts/gguf/fixture) and `magma export gguf`
#                    files of a random tiny checkpoint (bf16, q8_0,
#                    q4_k_m): names, shapes, types
#   run.sh llamacpp  0. the parity checkpoint: llama.cpp's logits vs PyTorch's
#                    golden ones and ours; 1. llama.cpp loads `magma export gguf` files (f32, bf16)
#                    of a random tiny checkpoint; its next-token logits for a
#                    prompt of token ids are compared with ours and with a
#                    reference forward of the file (scripts/gguf/refllama);
#                    2. llama.cpp's own quantizer (llama_model_quantize of its
#                    prebuilt libllama, through python3 ctypes) writes Q8_0 /
#                    Q4_K_M blocks, compared byte for byte with ours;
#                    3. llama.cpp on our q8_0 / q4_k_m exports vs magma on the
#                    same blocks (KEEP_LLAMACPP_QUANT=DIR keeps llama.cpp's
#                    quantized files and their f32 source)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BIN=${BIN:-$repo/bin/magma}
PYTHON=${PYTHON:-/usr/bin/python3} # Debian's, with numpy (make setup-ref)
mode=${1:?usage: run.sh npm|llamacpp}

cd "$here"
installed() { node -p "try { require('./node_modules/$1/package.json').version } catch { '' }"; }
want() { node -p "require('./package.json').dependencies['$1']"; }
if [ "$(installed @huggingface/gguf)" != "$(want @huggingface/gguf)" ] || [ "$(installed node-llama-cpp)" != "$(want node-llama-cpp)" ] ||
	[ "$(installed @node-llama-cpp/linux-x64)" != "$(want @node-llama-cpp/linux-x64)" ]; then
	# --ignore-scripts: node-llama-cpp's postinstall would look for a build;
	# --omit=optional: only the CPU prebuilt (linux-x64, a direct dependency)
	# is wanted. `npm install` with the lock file, not `npm ci`: npm ci
	# refuses the lock because node-llama-cpp lists platform packages that
	# the registry does not serve at 3.22.1 (linux-riscv64, win-*, mac-*).
	npm install --no-audit --no-fund --loglevel=error --ignore-scripts --omit=optional
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

case "$mode" in
npm)
	(cd "$repo" && go run ./scripts/gguf/fixture "$tmp/fixture.gguf" "$tmp/fixture.json")
	node check_npm.mjs fixture "$tmp/fixture.gguf" "$tmp/fixture.json"
	"$BIN" init --preset tiny --out "$tmp/tiny" >/dev/null
	# q4_k/q4_k_m on tiny (rows of 64 and 192) fall back to Q8_0: the
	# fixture above holds Q4_K and Q6_K tensors
	for type in bf16 q8_0 q4_k_m; do
		"$BIN" export gguf --model "$tmp/tiny" --text-only --type "$type" --out "$tmp/tiny-$type.gguf" --json >"$tmp/written-$type.json"
		node check_npm.mjs export "$tmp/tiny-$type.gguf" "$tmp/tiny/config.json" "$tmp/written-$type.json"
	done
	;;
llamacpp)
	ids=128000,128006,882,128007,271,9906,1917,11,1268,527,499,30,128009,128006,78191,128007,271
	(cd "$repo" && go build -o "$tmp/refllama" ./scripts/gguf/refllama && go build -o "$tmp/blockcmp" ./scripts/gguf/blockcmp)

	echo "== 0. the parity checkpoint (model/testdata/parity): llama.cpp vs PyTorch's golden logits and vs ours"
	# no tokenizer there: a byte-level placeholder vocabulary; f32 and bf16
	# copies of the same model (model_bf16)
	par=$repo/model/testdata/parity
	pids=1,30,31,32,33,34,35 # golden.json's "text" case
	"$BIN" export gguf --model "$par" --text-only --type f32 --placeholder-vocab --out "$tmp/parity-f32.gguf" >/dev/null
	"$BIN" export gguf --model "$par/model_bf16" --text-only --type bf16 --placeholder-vocab --out "$tmp/parity-bf16.gguf" >/dev/null
	"$BIN" generate --model "$par" --prompt-ids "$pids" --max-new-tokens 1 --logits-out "$tmp/parity-ours.safetensors" >/dev/null
	"$BIN" generate --model "$par/model_bf16" --prompt-ids "$pids" --max-new-tokens 1 --logits-out "$tmp/parity-bf16-ours.safetensors" >/dev/null
	"$tmp/refllama" -round-bf16 "$tmp/parity-bf16.gguf" "$pids" "$tmp/parity-ref-bf16.safetensors"
	node llamacpp_logits.mjs "$pids" \
		"$tmp/parity-f32.gguf" "$par/golden_text.safetensors" "${MAX_REL_F32:-1e-5}" \
		"$tmp/parity-f32.gguf" "$tmp/parity-ours.safetensors" "${MAX_REL_F32:-1e-5}" \
		"$tmp/parity-bf16.gguf" "$tmp/parity-ref-bf16.safetensors" "${MAX_REL_REF:-1e-5}" \
		"$tmp/parity-bf16.gguf" "$tmp/parity-bf16-ours.safetensors" "${MAX_REL_BF16:-5e-3}"

	echo "== 1. tiny (bf16 weights): llama.cpp's next-token logits vs ours"
	# bf16 weights, so that the bf16 file holds exactly our weights; the f32
	# file of the same weights isolates the file (names, Q/K permutation,
	# hyperparameters, tokenizer) from llama.cpp's bf16 arithmetic, and
	# refllama -round-bf16 (bf16-rounded inputs of bf16 products, as
	# llama.cpp's CPU BF16 path computes) shows where the bf16 gap comes from
	"$BIN" init --preset tiny --dtype bf16 --out "$tmp/tiny" >/dev/null
	"$BIN" export gguf --model "$tmp/tiny" --text-only --type bf16 --out "$tmp/tiny-bf16.gguf" >/dev/null
	"$BIN" export gguf --model "$tmp/tiny" --text-only --type f32 --out "$tmp/tiny-f32.gguf" >/dev/null
	"$BIN" generate --model "$tmp/tiny" --prompt-ids "$ids" --max-new-tokens 1 --logits-out "$tmp/ours.safetensors" >/dev/null
	"$tmp/refllama" -round-bf16 "$tmp/tiny-bf16.gguf" "$ids" "$tmp/ref-bf16.safetensors"
	node llamacpp_logits.mjs "$ids" \
		"$tmp/tiny-f32.gguf" "$tmp/ours.safetensors" "${MAX_REL_F32:-1e-5}" \
		"$tmp/tiny-bf16.gguf" "$tmp/ref-bf16.safetensors" "${MAX_REL_REF:-1e-5}" \
		"$tmp/tiny-bf16.gguf" "$tmp/ours.safetensors" "${MAX_REL_BF16:-5e-3}"

	echo "== 2. a 256-wide model: llama.cpp's own quantizer vs ours, block by block"
	sed -e 's/^    hidden_size: 64$/    hidden_size: 256/' -e 's/^    intermediate_size: 192$/    intermediate_size: 512/' \
		-e "s|^tokenizer: .*|tokenizer: $repo/assets/tokenizer/magma|" "$repo/configs/tiny.yaml" >"$tmp/w256.yaml"
	"$BIN" init --preset "$tmp/w256.yaml" --out "$tmp/w256" >/dev/null
	"$BIN" export gguf --model "$tmp/w256" --text-only --type f32 --out "$tmp/w256-f32.gguf" >/dev/null
	for type in q8_0 q4_k_m; do
		"$PYTHON" llamacpp_quantize.py "$tmp/w256-f32.gguf" "$tmp/w256-llamacpp-$type.gguf" "$type" >"$tmp/quantize.log" 2>&1 ||
			{ cat "$tmp/quantize.log"; exit 1; }
		"$BIN" export gguf --model "$tmp/w256" --text-only --type "$type" --out "$tmp/w256-$type.gguf" >/dev/null
		echo "$type: llama.cpp's blocks vs magma export gguf's"
		"$tmp/blockcmp" "$tmp/w256-llamacpp-$type.gguf" "$tmp/w256-$type.gguf"
		if [ -f "$repo/scripts/fixtures/ggml_decode.py" ] && "$PYTHON" -c "import numpy" 2>/dev/null; then
			# llama.cpp's blocks decoded with numpy, within the format's bound of the f32 source
			"$PYTHON" "$repo/scripts/fixtures/ggml_decode.py" --gguf "$tmp/w256-llamacpp-$type.gguf" --source-gguf "$tmp/w256-f32.gguf"
		else
			echo "(numpy decoder of llama.cpp's file skipped: numpy or scripts/fixtures/ggml_decode.py missing)"
		fi
		if [ -n "${KEEP_LLAMACPP_QUANT:-}" ]; then
			mkdir -p "$KEEP_LLAMACPP_QUANT"
			cp "$tmp/w256-llamacpp-$type.gguf" "$tmp/w256-f32.gguf" "$KEEP_LLAMACPP_QUANT/"
		fi
	done

	echo "== 3. llama.cpp on our quantized exports vs magma on magma quantize's folder (same blocks)"
	# llama.cpp rounds activations to 8 bits in its quantized products;
	# magma's prefill multiplies dequantized tiles in f32: reported, loose limit
	args=()
	for type in q8_0 q4_k_m; do
		"$BIN" quantize --model "$tmp/w256" --type "$type" --out "$tmp/w256-q-$type" >/dev/null 2>"$tmp/quantize.log" || { cat "$tmp/quantize.log"; exit 1; }
		"$BIN" generate --model "$tmp/w256-q-$type" --prompt-ids "$ids" --max-new-tokens 1 --logits-out "$tmp/ours-$type.safetensors" >/dev/null
		args+=("$tmp/w256-$type.gguf" "$tmp/ours-$type.safetensors" "${MAX_REL_QUANT:-5e-2}")
	done
	node llamacpp_logits.mjs "$ids" "${args[@]}"
	;;
*)
	echo "usage: run.sh npm|llamacpp" >&2
	exit 2
	;;
esac
