package main

import (
	"strings"
	"testing"
)

// Issue 31, point 13: every command's --help says what the command does
// (the summaries name every eval benchmark; pretrain says how many
// checkpoints are kept; finetune sft lists every --trainable value and the
// LoRA flags its errors mention; --steps and --max-steps say they are one
// setting; init's --dtype default is spelled like its help).
func TestHelpTexts(t *testing.T) {
	var qa []string
	for _, b := range qaBenchmarks {
		qa = append(qa, b.name)
	}
	cases := []struct {
		args          []string
		want, notWant []string
	}{
		{[]string{"--help"}, append([]string{"eval screenspot", "mind2web", "eval libero", "synthetic-qa"}, qa...), nil},
		{[]string{"eval", "--help"}, append([]string{"screenspot", "mind2web", "libero", "synthetic-qa"}, qa...), nil},
		{[]string{"pretrain", "--help"}, []string{"checkpoint.keep", "2 in the default recipe", "0 keeps all", "--max-steps int", "the schedule's length"}, []string{"newest kept"}},
		{[]string{"finetune", "sft", "--help"},
			[]string{"all | vision_frozen | projector_only | lora", "--lora-rank int", "--lora-alpha float", "--lora-targets string",
				"--max-steps is the same setting", "the same setting as --steps", "giving both with different values is an error"}, nil},
		{[]string{"finetune", "libero", "--help"}, []string{"--max-steps is the same setting", "the same setting as --steps"}, []string{"(same as --max-steps)"}},
		{[]string{"init", "--help"}, []string{`stored dtype: f32, bf16 or f16`, `(default "f32")`}, []string{`"F32"`, "--dtype BF16"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := runMagma(t, tc.args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("help lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("help still says %q:\n%s", w, out)
				}
			}
		})
	}
}

// Issue 31, point 13: the flag combinations the help texts describe are
// refused before any data or checkpoint is read, each naming the flags.
func TestFlagConflicts(t *testing.T) {
	sft := []string{"finetune", "sft", "--data", "/nonexistent/sft.json", "--model", "/nonexistent/model", "--out", t.TempDir()}
	libero := []string{"finetune", "libero", "--data", "/nonexistent/suite", "--init", "/nonexistent/model", "--out", t.TempDir()}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"sft steps vs max-steps", append(sft, "--steps", "5", "--max-steps", "7"), []string{"--steps 5", "--max-steps 7", "disagree"}},
		{"libero steps vs max-steps", append(libero, "--steps", "5", "--max-steps", "7"), []string{"--steps 5", "--max-steps 7", "disagree"}},
		{"negative max-steps", []string{"pretrain", "--max-steps", "-1", "--out", t.TempDir()}, []string{"--max-steps -1"}},
		{"sft lora without rank", append(sft, "--trainable", "lora"), []string{"--trainable lora", "--lora-rank N", "lora.rank"}},
		{"sft alpha without rank", append(sft, "--lora-alpha", "16"), []string{"--lora-alpha", "--lora-rank"}},
		{"sft rank with trainable all", append(sft, "--trainable", "all", "--lora-rank", "8"), []string{"--trainable all", "--lora-rank 8"}},
		{"sft negative rank", append(sft, "--lora-rank", "-2"), []string{"--lora-rank -2"}},
		{"sft unknown target", append(sft, "--lora-rank", "4", "--lora-targets", "q_proj,lm_head"), []string{"--lora-targets", "lm_head"}},
		{"init dtype", []string{"init", "--dtype", "int8", "--out", t.TempDir()}, []string{`--dtype "int8"`, "f32, bf16 or f16"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runMagma(t, tc.args...)
			if err == nil {
				t.Fatalf("accepted:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
