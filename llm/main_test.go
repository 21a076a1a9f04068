package llm

import (
	"flag"
	"os"
	"testing"

	"github.com/magma-go/magma/kernels"
)

// TestMain runs every test of the package (parity goldens, gradient checks,
// resume) with the executor's NaN-poison mode on: each buffer is filled
// with NaN the moment its value dies, so a value read after its buffer was
// reused would turn the results into NaN. Benchmarks run without it.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		kernels.SetPoisonFreed(true)
	}
	os.Exit(m.Run())
}
