package cotracker

import (
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// mapSource is a Source over explicit shapes, values from the formula.
type mapSource struct {
	names  []string
	shapes map[string][]int
	w      gWeights
}

func (s mapSource) Names() []string { return s.names }
func (s mapSource) Shape(n string) ([]int, bool) {
	sh, ok := s.shapes[n]
	return sh, ok
}
func (s mapSource) Values(n string) ([]float64, error) {
	sh := s.shapes[n]
	size := 1
	for _, d := range sh {
		size *= d
	}
	return make([]float64, size), nil
}

// TestBindErrors: a checkpoint that does not fit is refused with the
// file, the tensor and the shapes; a {"model": ...} wrapper is accepted.
func TestBindErrors(t *testing.T) {
	cfg, _ := DefaultConfig(Offline)
	cfg.Resolution = [2]int{32, 32}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := newGWeights(t, m)
	base := func(prefix string) mapSource {
		s := mapSource{shapes: map[string][]int{}, w: w}
		for _, n := range w.names {
			s.names = append(s.names, prefix+n)
			s.shapes[prefix+n] = w.shapes[n]
		}
		s.names = append(s.names, prefix+"time_emb")
		s.shapes[prefix+"time_emb"] = []int{1, 60, InputDim}
		return s
	}
	for _, tc := range []struct {
		name string
		edit func(s *mapSource)
		want string // "" = accepted
	}{
		{"complete", func(s *mapSource) {}, ""},
		{"wrapped", nil, ""},
		{"missing", func(s *mapSource) { delete(s.shapes, "corr_mlp.fc1.weight") }, `"corr_mlp.fc1.weight" missing (expected shape [384 2401])`},
		{"shape", func(s *mapSource) { s.shapes["fnet.conv1.weight"] = []int{64, 3, 5, 5} }, `"fnet.conv1.weight" has shape [64 3 5 5], the model needs [64 3 7 7]`},
		{"online checkpoint", func(s *mapSource) { s.shapes["time_emb"] = []int{1, 16, InputDim} }, `"time_emb" has shape [1 16 1110], the offline model needs [1 60 1110] (wrong variant?)`},
		{"unexpected", func(s *mapSource) {
			s.names = append(s.names, "head.weight")
			s.shapes["head.weight"] = []int{2}
		}, "unexpected tensors head.weight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base("")
			if tc.edit == nil {
				s = base("model.")
			} else {
				tc.edit(&s)
			}
			m, _ := New(cfg)
			err := m.Bind(s, "ckpt.pth", tensor.Float32)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatal("accepted")
			case tc.want != "" && (!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "ckpt.pth")):
				t.Fatalf("error %q does not name %q and the file", err, tc.want)
			}
		})
	}
}

// TestLoadErrors: Load names the file and the reason for a missing file,
// a state dict of another model and an unknown variant.
func TestLoadErrors(t *testing.T) {
	other := filepath.Join("..", "..", "model", "pth", "testdata", "module.pth")
	for _, tc := range []struct {
		path, variant, want string
	}{
		{"/nonexistent/scaled_offline.pth", "offline", "/nonexistent/scaled_offline.pth"},
		{other, "online", "missing"},
		{other, "sideways", `unknown variant "sideways"`},
		{other, "", "no time_emb buffer"},
	} {
		_, err := Load(tc.path, tc.variant, Options{Resolution: [2]int{32, 32}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%s, %s): error %v, want it to mention %q", tc.path, tc.variant, err, tc.want)
		}
	}
	if _, err := Load(other, "online", Options{Resolution: [2]int{30, 32}}); err == nil || !strings.Contains(err.Error(), "multiples of 32") {
		t.Errorf("bad resolution: %v", err)
	}
}
