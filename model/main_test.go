package model

import (
	"flag"
	"os"
	"testing"

	"github.com/magma-go/magma/kernels"
)

// TestMain runs the package's tests in the executor's NaN-poison mode
// (kernels.PoisonFreedInTests).
func TestMain(m *testing.M) {
	flag.Parse()
	kernels.PoisonFreedInTests()
	os.Exit(m.Run())
}
