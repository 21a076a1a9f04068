// Package pretrain embeds the training recipes (configs/pretrain/*.yaml) of
// magma pretrain (tiny, magma-8b) and the defaults of magma finetune (sft,
// libero, libero-full), the one home of their learning rates and schedules:
// model preset or init checkpoint, data mixture, optimizer, schedule,
// batch, checkpoint cadence. train.LoadConfig parses them.
package pretrain

import (
	"embed"
	"fmt"
	"strings"

	"github.com/magma-go/magma/configs"
)

//go:embed *.yaml
var recipes embed.FS

// Default is the recipe `magma pretrain` runs without --config.
const Default = "tiny"

// Names lists the embedded recipes, sorted.
func Names() []string { return configs.YAMLNames(recipes) }

// Raw returns the YAML text of an embedded recipe.
func Raw(name string) ([]byte, error) {
	data, err := recipes.ReadFile(name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("configs/pretrain: unknown recipe %q (available: %s)", name, strings.Join(Names(), ", "))
	}
	return data, nil
}
