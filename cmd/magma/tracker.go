package main

import (
	"github.com/magma-go/magma/tom"
	"github.com/magma-go/magma/tom/cotracker"
)

// The binary links CoTracker3: `--tracker cotracker` (and a recipe's
// tracker: cotracker) builds it from the official checkpoint, the variant
// (offline or online) told apart by the checkpoint itself. tom and data
// only see the tom.Tracker interface.
func init() {
	tom.RegisterCoTracker(func(weights string) (tom.Tracker, error) {
		return cotracker.Load(weights, "", cotracker.Options{})
	})
}
