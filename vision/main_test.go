package vision

import (
	"flag"
	"os"
	"testing"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/nn"
)

// TestMain runs the package's tests in the executor's NaN-poison mode
// (kernels.PoisonFreedInTests).
func TestMain(m *testing.M) {
	flag.Parse()
	kernels.PoisonFreedInTests()
	os.Exit(m.Run())
}

// params lists the parameters under root (nn.Parameters; the tests' models
// are well formed).
func params(root any, prefix string) []nn.Param {
	ps, _ := nn.Parameters(root, prefix)
	return ps
}

// paramCount is nn.ParamCount as an int.
func paramCount(root any) int {
	n, _ := nn.ParamCount(root)
	return int(n)
}
