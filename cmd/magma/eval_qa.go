package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/magma-go/magma/eval"
	"github.com/spf13/cobra"
)

// qaFlags are the flags of the question-answering eval subcommands.
type qaFlags struct {
	modelDir, tokPath, data, media, out, predictions, split string
	load                                                    loadFlags
	limit, maxNew, every, frames                            int
	resume                                                  bool
}

// qaBenchmark describes one QA subcommand.
type qaBenchmark struct {
	name, short, example, splitHelp, mediaHelp string
	// predHelp names the published answer files --predictions takes.
	predHelp string
	video    bool
	load     func(f *qaFlags) (*eval.QABench, error)
}

var qaBenchmarks = []qaBenchmark{
	{name: "vqav2", short: "VQAv2 (official VQA accuracy, per answer type)",
		example:   "  magma eval vqav2 --model out/magma --data vqav2 --out out/vqav2\n  magma eval vqav2 --data vqav2 --predictions out/vqav2/predictions.jsonl\n  magma eval vqav2 --data vqav2 --predictions vqav2_val_results.json   # official results format",
		splitHelp: "question/annotation file name filter when several are present (e.g. val2014)", mediaHelp: "image folder (default DATA/<data_subtype>, DATA/images or DATA)",
		predHelp: "the official results JSON [{\"question_id\", \"answer\"}] (EvalAI's; --out writes one as results_official.json) or LLaVA's answers JSONL",
		load:     func(f *qaFlags) (*eval.QABench, error) { return eval.LoadVQAv2(f.data, f.split, f.media) }},
	{name: "textvqa", short: "TextVQA (official VQA accuracy with TextVQA's normalisation)",
		example:   "  magma eval textvqa --model out/magma --data textvqa --out out/textvqa",
		splitHelp: "split of TextVQA_0.5.1_<split>.json (default val)", mediaHelp: "image folder (default DATA/train_images, DATA/images or DATA)",
		predHelp: "the official results JSON [{\"question_id\", \"answer\"}] (EvalAI's; --out writes one as results_official.json) or LLaVA's answers JSONL",
		load:     func(f *qaFlags) (*eval.QABench, error) { return eval.LoadTextVQA(f.data, f.split, f.media) }},
	{name: "pope", short: "POPE object hallucination (accuracy, precision, recall, F1, yes-ratio per split)",
		example:   "  magma eval pope --model out/magma --data pope --images coco/val2014 --out out/pope\n  magma eval pope --data pope --split adversarial --predictions preds.jsonl\n  magma eval pope --data pope --split random --predictions answer/random.json   # POPE's answer file",
		splitHelp: "only this split: random, popular or adversarial (default: all present)", mediaHelp: "image folder (default DATA/val2014, DATA/images or DATA)",
		predHelp: "POPE's answer file ({\"question\", \"answer\"} lines in question order; one split: give --split) or LLaVA's answers JSONL (same order)",
		load:     func(f *qaFlags) (*eval.QABench, error) { return eval.LoadPOPE(f.data, f.split, f.media) }},
	{name: "nextqa", short: "NExT-QA multiple choice (accuracy per causal/temporal/descriptive)", video: true,
		example:   "  magma eval nextqa --model out/magma --data nextqa --frames 8 --out out/nextqa",
		splitHelp: "CSV split (default val)", mediaHelp: "video folder (default DATA/NExTVideo, DATA/videos or DATA)",
		predHelp: "NExT-QA's results JSON ({\"<video>_<qid>\": {\"prediction\": option index}}, as eval_mc.py reads it)",
		load:     func(f *qaFlags) (*eval.QABench, error) { return eval.LoadNextQA(f.data, f.split, f.media, f.frames) }},
	{name: "videomme", short: "Video-MME multiple choice (accuracy by duration)", video: true,
		example:   "  magma eval videomme --model out/magma --data videomme --frames 16 --out out/videomme",
		splitHelp: "only this duration: short, medium or long", mediaHelp: "video folder (default DATA/data, DATA/videos or DATA)",
		predHelp: "Video-MME's results JSON (output_test_template.json: videos with \"questions\" [{\"question_id\", \"response\"}])",
		load:     func(f *qaFlags) (*eval.QABench, error) { return eval.LoadVideoMME(f.data, f.split, f.media, f.frames) }},
	{name: "aitw", short: "Android in the Wild (action matching per category, SeeClick protocol)",
		example:   "  magma eval aitw --model out/magma --data aitw --out out/aitw\n  magma eval aitw --data aitw --split install --predictions preds.jsonl",
		splitHelp: "only this category: general, install, googleapps, single or webshopping", mediaHelp: "screenshot folder (default DATA/aitw_images, DATA/images or DATA)",
		load: func(f *qaFlags) (*eval.QABench, error) { return eval.LoadAITW(f.data, f.split, f.media) }},
}

// qaNames lists the QA benchmarks' subcommands, for the summaries.
func qaNames(sep string) string {
	names := make([]string, len(qaBenchmarks))
	for i, b := range qaBenchmarks {
		names[i] = b.name
	}
	return strings.Join(names, sep)
}

func (b qaBenchmark) command() *cobra.Command {
	var f qaFlags
	cmd := &cobra.Command{
		Use:     b.name,
		Short:   b.short,
		Example: b.example,
		RunE:    func(cmd *cobra.Command, _ []string) error { return b.run(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.modelDir, "model", "", "checkpoint directory (not needed with --predictions)")
	fl.StringVar(&f.tokPath, "tokenizer", "", "tokenizer directory (default: the checkpoint's)")
	f.load.add(fl, true)
	fl.StringVar(&f.data, "data", "", "benchmark directory in the published layout (see README)")
	mediaFlag := "images"
	if b.video {
		mediaFlag = "videos"
		fl.IntVar(&f.frames, "frames", eval.QAFrames, "frames sampled uniformly from each video")
	}
	fl.StringVar(&f.media, mediaFlag, "", b.mediaHelp)
	outHelp := "report directory: results.json, timing.json, predictions.jsonl"
	if b.name == "vqav2" || b.name == "textvqa" {
		outHelp += ", " + eval.OfficialResultsFile + " (the official results format, for EvalAI)"
	}
	fl.StringVar(&f.out, "out", "", outHelp)
	predHelp := "score this answer file instead of running a model: a run's predictions.jsonl or " + b.predHelp + " (see README)"
	if b.predHelp == "" {
		predHelp = "score a run's predictions.jsonl instead of running a model (" + b.name + " has no published answer file)"
	}
	fl.StringVar(&f.predictions, "predictions", "", predHelp)
	fl.StringVar(&f.split, "split", "", b.splitHelp)
	fl.BoolVar(&f.resume, "resume", false, "reuse the answers in --out's predictions.jsonl (an interrupted run) and run the model for the rest")
	fl.IntVar(&f.limit, "limit", 0, "evaluate only the first N items (0 = all)")
	fl.IntVar(&f.maxNew, "max-new-tokens", 32, "generated tokens per answer")
	fl.IntVar(&f.every, "progress-every", 50, "print a progress line every N items")
	_ = cmd.MarkFlagRequired("data")
	return cmd
}

// run scores the benchmark: the model's answers, or --predictions.
func (b qaBenchmark) run(cmd *cobra.Command, f *qaFlags) error {
	bench, err := b.load(f)
	if err != nil {
		return err
	}
	opt := eval.Options{Predictions: f.predictions, Limit: f.limit, OutDir: f.out, MaxNewTokens: f.maxNew,
		Progress: cmd.ErrOrStderr(), ProgressEvery: f.every, Frames: f.frames, Resume: f.resume}
	if f.predictions == "" {
		if f.modelDir == "" {
			return fmt.Errorf("give --model (or --predictions to score a predictions file)")
		}
		p, err := f.load.pipeline(f.modelDir, f.tokPath, 1)
		if err != nil {
			return err
		}
		opt.Model = p
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d items from %d files\n", b.name, len(bench.Items), len(bench.Files))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := eval.RunQA(ctx, bench, opt)
	if err != nil {
		return err
	}
	res.WriteTable(cmd.OutOrStdout())
	for i, e := range res.ErrorRecords {
		if i == 10 {
			fmt.Fprintf(cmd.OutOrStdout(), "... %d more in results.json\n", len(res.ErrorRecords)-10)
			break
		}
		fmt.Fprintf(cmd.OutOrStdout(), "error: %s: %s\n", e.Where, e.Error)
	}
	if f.out != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "report: %s\n", f.out)
		if bench.OfficialResults {
			fmt.Fprintf(cmd.OutOrStdout(), "official results (VQA evaluator, EvalAI): %s\n", filepath.Join(f.out, eval.OfficialResultsFile))
		}
	}
	return nil
}

// qaCommands are the QA benchmark subcommands of `magma eval`.
func qaCommands() []*cobra.Command {
	var out []*cobra.Command
	for _, b := range qaBenchmarks {
		out = append(out, b.command())
	}
	return out
}

// syntheticQACmd writes the QA fixtures (demo data, tests, bench-eval).
func syntheticQACmd() *cobra.Command {
	var o eval.SyntheticQAOptions
	var out string
	cmd := &cobra.Command{
		Use:   "synthetic-qa",
		Short: "Write small VQAv2/TextVQA/POPE/NextQA/VideoMME/AITW fixtures in their published layouts (demo data, tests, benchmarks)",
		Example: `  magma eval synthetic-qa --out /tmp/qa
  magma init --preset tiny --out out/tiny
  magma eval vqav2 --model out/tiny --data /tmp/qa/vqav2 --out out/vqav2`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := eval.WriteSyntheticQA(out, o); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %v fixtures to %s\n", eval.QABenchmarks, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "output directory (one folder per benchmark)")
	cmd.Flags().IntVar(&o.Items, "items", 6, "items per benchmark")
	cmd.Flags().BoolVar(&o.Bad, "bad", false, "add bad records (missing image/video, question without annotation, malformed line...)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}
