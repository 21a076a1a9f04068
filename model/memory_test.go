package model

import (
	"strings"
	"testing"
)

func TestCheckMemory(t *testing.T) {
	defer func(f func() (int64, bool)) { memAvailable = f }(memAvailable)
	memAvailable = func() (int64, bool) { return 20e9, true }
	cfg, _, err := PresetConfigs("magma-8b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "35.6 GB") || !strings.Contains(err.Error(), "20.0 GB") {
		t.Fatalf("New(magma-8b) with 20 GB: %v", err)
	}
	if err := CheckMemory(cfg, 4, "training"); err == nil || !strings.Contains(err.Error(), "142.5 GB") {
		t.Fatalf("training check: %v", err)
	}
	tiny, _, err := PresetConfigs("tiny")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckMemory(tiny, 4, "training"); err != nil {
		t.Fatalf("tiny: %v", err)
	}
	memAvailable = func() (int64, bool) { return 0, false }
	if err := CheckMemory(cfg, 4, "training"); err != nil {
		t.Fatalf("unknown memory must not refuse: %v", err)
	}
}

// The KV cache's bytes follow its element size: Magma-8B holds 32 layers ×
// 2 × 8 kv heads × 128 × 4 B = 256 KiB per position in float32, half that
// in bfloat16, and the refusal uses the right numbers.
func TestKVCacheBytes(t *testing.T) {
	defer func(f func() (int64, bool)) { memAvailable = f }(memAvailable)
	memAvailable = func() (int64, bool) { return 1.5e9, true }
	cfg, _, err := PresetConfigs("magma-8b")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		elem    int
		perPos  float64
		refused bool
		msg     []string
	}{
		{"f32", 4, 262144, true, []string{"2.1 GB", "x 4 bytes per position", "--kv-cache bf16"}},
		{"bf16", 2, 131072, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := KVCacheBytes(cfg, 1, 1, tc.elem); got != tc.perPos {
				t.Errorf("bytes per position %g, want %g", got, tc.perPos)
			}
			if got := KVCacheBytes(cfg, 2, 8192, tc.elem); got != 2*8192*tc.perPos {
				t.Errorf("2 x 8192 positions: %g", got)
			}
			err := CheckKVCache(cfg, 1, 8192, tc.elem)
			if (err != nil) != tc.refused {
				t.Fatalf("CheckKVCache(8192 positions) with 1.5 GB: %v", err)
			}
			for _, m := range tc.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("refusal %q lacks %q", err, m)
				}
			}
		})
	}
}
