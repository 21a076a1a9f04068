package model

import (
	"fmt"

	"github.com/magma-go/magma/kernels"
)

// CheckMemory refuses, with a message that says why, a model whose float32
// tensors would not fit: copies is how many parameter-sized float32 buffers
// the job holds (1 to run the model; 4 to train it: weights, gradients and
// the two AdamW moments). Without it an 8B model on a small machine is
// killed by the kernel's OOM killer with no explanation. Machines that do
// not report MemAvailable are not checked.
func CheckMemory(cfg *Config, copies int, what string) error {
	avail, ok := memAvailable()
	if !ok {
		return nil
	}
	need := ParamEstimate(cfg)["total"] * 4 * int64(copies)
	if need > avail {
		return fmt.Errorf("%s needs about %.1f GB for its %d-parameter model in float32 (%d copies: %s), but only %.1f GB of memory is available",
			what, float64(need)/1e9, ParamEstimate(cfg)["total"], copies, copiesMeaning(copies), float64(avail)/1e9)
	}
	return nil
}

// checkMemoryBytes refuses a job that needs more than the memory available
// now, saying what the bytes are (detail). Machines that do not report
// MemAvailable are not checked. Mapped checkpoint pages count as needed
// memory: a model runs at disk speed unless its weights stay resident.
func checkMemoryBytes(need int64, what, detail string) error {
	avail, ok := memAvailable()
	if !ok || need <= avail {
		return nil
	}
	return noMemoryError(fmt.Sprintf("%s needs about %s (%s), but only %s of memory is available",
		what, kernels.FormatBytes(need), detail, kernels.FormatBytes(avail)))
}

// noMemoryError is a refusal for lack of memory; errors.Is(err,
// kernels.ErrNoMemory) reports it.
type noMemoryError string

func (e noMemoryError) Error() string        { return string(e) }
func (e noMemoryError) Is(target error) bool { return target == kernels.ErrNoMemory }

// KVCacheBytes is the KV cache of slots sequences of maxLen positions with
// elemSize bytes per stored element (4 for float32, 2 for bfloat16:
// kernels.KVElemSize): layers × 2 (keys, values) × kv heads × head dim ×
// elemSize bytes per position (in float64: saturating instead of
// overflowing).
func KVCacheBytes(cfg *Config, slots, maxLen, elemSize int) float64 {
	t := cfg.Text
	return float64(slots) * float64(maxLen) * float64(t.NumHiddenLayers) * 2 * float64(t.NumKeyValueHeads) * float64(t.HeadDim) * float64(elemSize)
}

// CheckKVCache refuses, with the numbers, a server whose KV caches (slots
// sequences of up to maxLen positions of elemSize-byte elements, on top of
// the loaded weights) would not fit in the memory available now: a
// checkpoint with a huge max_position_embeddings otherwise dies of OOM on
// its first request.
func CheckKVCache(cfg *Config, slots, maxLen, elemSize int) error {
	need := KVCacheBytes(cfg, slots, maxLen, elemSize)
	avail, ok := memAvailable()
	if !ok {
		return nil
	}
	if need > float64(avail) {
		hint := ""
		if elemSize > 2 {
			hint = ", or --kv-cache bf16 (half the bytes)"
		}
		return fmt.Errorf("the KV cache for %d sequences of %d positions needs %.1f GB (%d layers x 2 x %d kv heads x %d head dim x %d bytes per position), but only %.1f GB of memory is available: lower --max-context (max_position_embeddings is %d) or --max-batch%s",
			slots, maxLen, need/1e9, cfg.Text.NumHiddenLayers, cfg.Text.NumKeyValueHeads, cfg.Text.HeadDim, elemSize, float64(avail)/1e9, cfg.Text.MaxPositionEmbeddings, hint)
	}
	return nil
}

func copiesMeaning(n int) string {
	if n == 1 {
		return "the weights"
	}
	return "weights, gradients, AdamW moments"
}

// memAvailable is availableMemory; tests replace it.
var memAvailable = kernels.AvailableMemory
