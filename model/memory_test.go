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
