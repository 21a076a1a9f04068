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

func copiesMeaning(n int) string {
	if n == 1 {
		return "the weights"
	}
	return "weights, gradients, AdamW moments"
}

// memAvailable is availableMemory; tests replace it.
var memAvailable = kernels.AvailableMemory
