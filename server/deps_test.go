package server

import (
	"os/exec"
	"strings"
	"testing"
)

// TestServingLinksNoDataOrEval keeps the serving binary's dependency
// graph free of the training data tree and the benchmarks: the server
// reuses model's pipeline and model/action's action tokens and answer
// parsing, never package data (or data/...) or eval.
func TestServingLinksNoDataOrEval(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the dependencies")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const mod = "github.com/magma-go/magma/"
	n := 0
	for _, p := range strings.Fields(string(out)) {
		rel, ok := strings.CutPrefix(p, mod)
		if !ok {
			continue
		}
		n++
		if rel == "data" || strings.HasPrefix(rel, "data/") || rel == "eval" || strings.HasPrefix(rel, "eval/") {
			t.Errorf("server depends on %s", p)
		}
	}
	if n == 0 {
		t.Fatalf("go list -deps named no package of %s:\n%s", mod, out)
	}
}
