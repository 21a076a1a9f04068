package data

import (
	"strings"
	"testing"
)

// The source table is the one list of source types: each type a recipe
// accepts is one Inspect opens, in the table's order, and an unknown type
// is refused by both with the list.
func TestSourceTable(t *testing.T) {
	if len(InspectTypes) != len(sourceTable) || len(sourceTypes) != len(sourceTable) {
		t.Fatalf("%d types in the table, %d inspectable, %d by name", len(sourceTable), len(InspectTypes), len(sourceTypes))
	}
	dir := t.TempDir()
	for i, st := range sourceTable {
		if InspectTypes[i] != st.name || sourceTypes[st.name] == nil {
			t.Errorf("type %d %q: InspectTypes[%d] = %q", i, st.name, i, InspectTypes[i])
		}
		c := MixtureConfig{Sources: []SourceConfig{{Type: st.name, Path: "x", Weight: 1}}}
		if err := c.Validate(); err != nil && strings.Contains(err.Error(), "unknown type") {
			t.Errorf("recipe with a %s source: %v", st.name, err)
		}
		if _, err := Inspect(dir, InspectOptions{Type: st.name}); err != nil && strings.Contains(err.Error(), "unknown type") {
			t.Errorf("inspect --type %s: %v", st.name, err)
		}
	}
	c := MixtureConfig{Sources: []SourceConfig{{Type: "nope", Path: "x", Weight: 1}}}
	want := `data: source 0: unknown type "nope" (want llava, magma_som, magma_tom, rlds, robot, ui, video)`
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("unknown type: %v (want %s)", err, want)
	}
	if _, err := Inspect(dir, InspectOptions{Type: "nope"}); err == nil || !strings.Contains(err.Error(), "(want llava, ui, video, robot, rlds, magma_tom, magma_som)") {
		t.Errorf("inspect --type nope: %v", err)
	}
}
