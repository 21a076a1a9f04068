package vision

import "github.com/magma-go/magma/nn"

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
