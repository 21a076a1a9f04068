package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/magma-go/magma/server"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// serveFlags are the flags of serve.
type serveFlags struct {
	modelDir, tokPath, addr, name string
	cfg                           server.Config
	timeoutS, drainS, readS       float64
	verbose                       bool
	load                          loadFlags
	served                        []string
}

func newServeCmd() *cobra.Command {
	o := serveFlags{cfg: server.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve a Magma checkpoint over HTTP (OpenAI-compatible chat, UI grounding, robot actions)",
		Example: `  magma serve --model out/tiny
  magma serve --model DIR --addr 127.0.0.1:8080 --max-batch 8 --max-queue 64 --timeout 300
  magma serve --model runs/pretrain/checkpoints/step-000300 --served-model-name tiny,magma
  MAGMA_API_KEY=secret magma serve --model DIR --addr 0.0.0.0:8080 --allowed-host magma.example.org`,
		RunE: o.runE,
	}
	f := cmd.Flags()
	f.StringVar(&o.modelDir, "model", "", "checkpoint directory (Hugging Face layout, with tokenizer.json)")
	f.StringVar(&o.tokPath, "tokenizer", "", "tokenizer directory (default: the model directory)")
	f.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address (loopback by default)")
	f.StringSliceVar(&o.served, "served-model-name", nil, "NAME[,ALIAS...]: model ids accepted in requests and listed by /v1/models; the first is reported in responses (default: the checkpoint folder's name, plus the preset of a training run's checkpoint and config.json's _name_or_path)")
	f.StringVar(&o.name, "model-name", "", "one model id (old spelling of --served-model-name)")
	_ = f.MarkHidden("model-name")
	f.IntVar(&o.cfg.MaxBatch, "max-batch", o.cfg.MaxBatch, "sequences decoded together (step-level batching); 1 = one at a time")
	f.IntVar(&o.cfg.MaxQueue, "max-queue", o.cfg.MaxQueue, "requests waiting for a decoder slot before 429")
	f.Float64Var(&o.timeoutS, "timeout", o.cfg.Timeout.Seconds(), "per-request timeout in seconds")
	f.Float64Var(&o.drainS, "drain-timeout", 30, "seconds to let in-flight requests finish on SIGTERM (the port stays open meanwhile: /health answers 503 draining)")
	f.IntVar(&o.cfg.MaxContext, "max-context", 0, "positions per sequence (prompt + output; sizes the KV cache per slot); 0 = the model's max")
	f.IntVar(&o.cfg.DefaultMaxTokens, "default-max-tokens", o.cfg.DefaultMaxTokens, "max_tokens when a request gives none")
	f.Int64Var(&o.cfg.MaxBodyBytes, "max-body-bytes", o.cfg.MaxBodyBytes, "request body limit")
	f.IntVar(&o.cfg.MaxImagePixels, "max-image-pixels", o.cfg.MaxImagePixels, "width*height limit per image")
	f.IntVar(&o.cfg.MaxImages, "max-images", o.cfg.MaxImages, "images per request")
	f.BoolVar(&o.cfg.AllowRemoteImages, "allow-remote-images", false, "let image_url name http(s) URLs (fetched by the server)")
	f.BoolVar(&o.cfg.AllowPrivateImages, "allow-private-images", false, "with --allow-remote-images: also fetch from loopback, link-local and private addresses")
	f.StringVar(&o.cfg.APIKey, "api-key", "", "require this key as 'Authorization: Bearer KEY' (default: $"+server.EnvAPIKey+"; /health stays open)")
	f.StringSliceVar(&o.cfg.AllowedHosts, "allowed-host", nil, "extra names accepted in the Host header (IP literals and localhost always are)")
	f.Float64Var(&o.readS, "read-timeout", o.cfg.ReadTimeout.Seconds(), "seconds to read a whole request, body included")
	f.IntVar(&o.cfg.MaxConns, "max-conns", o.cfg.MaxConns, "open connections at most; the next gets 503")
	f.BoolVar(&o.verbose, "verbose", false, "debug logs (health and metrics requests too)")
	o.load.add(f, false) // --max-context is the server's own
	_ = cmd.MarkFlagRequired("model")
	return cmd
}

// config completes the server's configuration from the flags: logger,
// timeouts, API key, model names.
func (o *serveFlags) config(cmd *cobra.Command) error {
	cfg := &o.cfg
	lvl := slog.LevelInfo
	if o.verbose {
		lvl = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: lvl}))
	cfg.Timeout = time.Duration(o.timeoutS * float64(time.Second))
	cfg.ReadTimeout = time.Duration(o.readS * float64(time.Second))
	if cfg.APIKey == "" {
		cfg.APIKey = os.Getenv(server.EnvAPIKey)
	}
	if o.name != "" {
		if len(o.served) > 0 {
			return fmt.Errorf("--model-name and --served-model-name both given: use --served-model-name")
		}
		o.served = []string{o.name}
	}
	names, err := servedModelNames(o.served, o.modelDir)
	if err != nil {
		return err
	}
	cfg.ModelName, cfg.ModelAliases = names[0], names[1:]
	return nil
}

// runE listens first (health answers 503 while the model loads), loads
// the model, and serves until SIGTERM or Ctrl-C, then drains.
func (o *serveFlags) runE(cmd *cobra.Command, _ []string) error {
	if err := o.config(cmd); err != nil {
		return err
	}
	cfg := o.cfg
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	srv := server.New(cfg)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	cfg.Logger.Info("listening (health answers 503 until the model is loaded)", "addr", ln.Addr().String())
	t0 := time.Now()
	o.load.maxContext = cfg.MaxContext
	p, err := o.load.pipeline(o.modelDir, o.tokPath, cfg.MaxBatch)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	if err := srv.Load(p); err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	cfg.Logger.Info("ready", "load_s", time.Since(t0).Seconds())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sig)
	select {
	case err := <-errc:
		return err
	case s := <-sig:
		cfg.Logger.Info("draining in-flight requests", "signal", s.String(), "deadline_s", o.drainS)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(o.drainS*float64(time.Second)))
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && err != context.DeadlineExceeded {
		return fmt.Errorf("shutdown: %w", err)
	}
	return <-errc
}

// servedModelNames returns the model ids `magma serve` answers to, the
// reported one first: --served-model-name when given (vLLM's flag: one or
// more names), otherwise the checkpoint folder's name, then the preset of
// a training run's checkpoint (RUN/checkpoints/step-N with RUN/config.yaml
// naming model.preset: "tiny" for the default `magma pretrain`) and
// config.json's _name_or_path (Hugging Face's, e.g. "microsoft/Magma-8B")
// when present.
func servedModelNames(flag []string, modelDir string) ([]string, error) {
	var names []string
	add := func(n string) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(flag) > 0 {
		for i, n := range flag {
			n = strings.TrimSpace(n)
			if n == "" {
				return nil, fmt.Errorf("--served-model-name: name %d of %q is empty", i+1, strings.Join(flag, ","))
			}
			add(n)
		}
		return names, nil
	}
	dir, err := filepath.Abs(modelDir)
	if err != nil {
		return nil, fmt.Errorf("--model %s: %w", modelDir, err)
	}
	add(filepath.Base(dir))
	if parent := filepath.Dir(dir); strings.HasPrefix(filepath.Base(dir), "step-") && filepath.Base(parent) == "checkpoints" {
		var recipe struct {
			Model struct {
				Preset   string `yaml:"preset"`
				InitFrom string `yaml:"init_from"`
			} `yaml:"model"`
		}
		if b, err := os.ReadFile(filepath.Join(filepath.Dir(parent), "config.yaml")); err == nil && yaml.Unmarshal(b, &recipe) == nil &&
			recipe.Model.InitFrom == "" && recipe.Model.Preset != "" {
			add(strings.TrimSuffix(strings.TrimSuffix(filepath.Base(recipe.Model.Preset), ".yaml"), ".yml"))
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "config.json")); err == nil {
		var cfg struct {
			NameOrPath string `json:"_name_or_path"`
		}
		if json.Unmarshal(b, &cfg) == nil {
			add(strings.TrimSpace(cfg.NameOrPath))
		}
	}
	return names, nil
}
