package train

import (
	"strings"
	"testing"
)

// Issue 31 point 2: every number of a recipe that drives work has an upper
// limit; exceeding it is an error naming the file, the key, the value and
// the limit. The data: section's limits (synthetic counts included) are
// reported through MixtureConfig with the file's name.
func TestRecipeUpperLimits(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want []string
	}{
		{"steps: 10000001\n", []string{"steps", "10000001", "10000000"}},
		{"batch_size: 5000\n", []string{"batch_size", "5000", "4096"}},
		{"grad_accum: 5000\n", []string{"grad_accum", "5000", "4096"}},
		{"seq_bucket: 10000\n", []string{"seq_bucket", "10000", "8192"}},
		{"max_seq_len: 200000\n", []string{"max_seq_len", "200000", "131072"}},
		{"checkpoint: {every: 20000000}\n", []string{"checkpoint.every", "20000000"}},
		{"checkpoint: {keep: 1001}\n", []string{"checkpoint.keep", "1001", "1000"}},
		{"log_every: 20000000\n", []string{"log_every", "20000000"}},
		{"model: {preset: tiny, vocab_size: 3000000}\n", []string{"model.vocab_size", "3000000"}},
		{"trainable: lora\nlora: {rank: 5000}\n", []string{"lora.rank", "5000", "4096"}},
	} {
		_, err := ParseConfig([]byte(c.yaml), "x.yaml")
		if err == nil {
			t.Errorf("%q accepted", c.yaml)
			continue
		}
		for _, w := range append(c.want, "x.yaml", "limit") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q lacks %q", c.yaml, err, w)
			}
		}
	}
	for _, c := range []struct {
		data string
		want []string
	}{
		{"data:\n  synthetic: {ui: 100000000}\n", []string{"synthetic.ui", "100000000", "10000"}},
		{"data:\n  synthetic: {ui: 0, videos: 0, robot_episodes: 0, captions: 0}\n", []string{"synthetic.ui", "synthetic.captions", "all 0"}},
		{"data:\n  workers: 65\n  synthetic: {}\n", []string{"workers", "65", "64"}},
	} {
		cfg, err := ParseConfig([]byte(c.data), "x.yaml")
		if err != nil {
			t.Fatal(err)
		}
		_, err = cfg.MixtureConfig()
		if err == nil {
			t.Errorf("%q accepted", c.data)
			continue
		}
		for _, w := range append(c.want, "x.yaml") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q lacks %q", c.data, err, w)
			}
		}
	}
	// A given 0 survives the recipe parse (config.yaml records what is used).
	cfg, err := ParseConfig([]byte("data:\n  synthetic: {ui: 0, captions: 4}\n"), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mc, err := cfg.MixtureConfig()
	if err != nil {
		t.Fatal(err)
	}
	if mc.Synthetic.UI != 0 || mc.Synthetic.Captions != 4 || mc.Synthetic.Videos != 12 {
		t.Errorf("synthetic %+v: want ui 0, captions 4, videos the default 12", *mc.Synthetic)
	}
	// The shipped recipes are within the limits.
	for _, name := range []string{"tiny", "magma-8b", "magma-8b-released", "sft", "libero", "libero-full"} {
		c, err := LoadConfig(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if c.HasData() {
			if _, err := c.MixtureConfig(); err != nil {
				t.Errorf("%s data: %v", name, err)
			}
		}
	}
}
