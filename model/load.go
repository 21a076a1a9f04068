package model

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/nn"
)

// decoderLayerName matches a decoder layer's tensor name and its index.
var decoderLayerName = regexp.MustCompile(`^language_model\.model\.layers\.(\d+)\.`)

// checkLoaded refuses checkpoints that load but cannot work: decoder layer
// tensors beyond num_hidden_layers (the config would silently drop trained
// layers) and non-finite values in lm_head, embed_tokens or the final norm
// (every answer would be NaN or token 0). Errors name the key or tensor.
func checkLoaded(m *Magma, unused []string) error {
	n := m.Config.Text.NumHiddenLayers
	for _, name := range unused {
		if sm := decoderLayerName.FindStringSubmatch(name); sm != nil {
			if i, _ := strconv.Atoi(sm[1]); i >= n {
				return fmt.Errorf("key \"text_config.num_hidden_layers\": %d, but the checkpoint has tensors of layer %d (%s): the config would silently drop layers", n, i, name)
			}
		}
	}
	ps, err := nn.Parameters(m, "")
	if err != nil {
		return err
	}
	for _, p := range ps {
		name, t := p.Name, p.T
		if !strings.HasSuffix(name, "lm_head.weight") && !strings.HasSuffix(name, "embed_tokens.weight") && name != "language_model.model.norm.weight" {
			continue
		}
		bad, first := ckpt.NonFinite(t)
		if bad > 0 {
			return fmt.Errorf("%w: tensor %q has %d NaN or infinite values of %d (first at flat index %d): the model cannot produce answers", ckpt.ErrCorrupt, name, bad, t.Shape().TotalSize(), first)
		}
	}
	return nil
}

// Loaded is a model read from a Hugging Face directory.
type Loaded struct {
	Model        *Magma
	Preprocessor *PreprocessorConfig
	Dir          string
	// Unused lists checkpoint tensors the model does not use (e.g. the
	// ConvNeXt classification head); callers may log them.
	Unused []string
	// Weights tells how the parameters are held: bytes by dtype, in place
	// (views of the mapped shards) or copied.
	Weights ckpt.WeightStats
	// Verified is what LoadOptions.Verify checked (nil without it).
	Verified *ckpt.Verification

	ck weightFile // open while the model uses its mapped shards or GGUF
}

// Close releases the checkpoint's mapped shards. The model's weights are
// views of them: nothing may use the model (or a graph built on it) after
// Close, so Close sets Model to nil. Without Close the mappings live until
// the process ends.
func (l *Loaded) Close() error {
	if l == nil || l.ck == nil {
		return nil
	}
	err := l.ck.Close()
	l.ck, l.Model = nil, nil
	return err
}

// LoadOptions controls LoadWith.
type LoadOptions struct {
	// Dtype of the weights in memory. The zero value keeps every tensor's
	// stored dtype (BF16, F16 and F32 are used in place, views of the
	// mapped shards; F64 becomes F32); kernels.BFloat16, kernels.Float16
	// or tensor.Float32 convert every tensor to that dtype on load (a
	// tensor already in it is still used in place).
	Dtype tensor.Dtype
	// Writable copies every tensor into process memory, none used in
	// place: what training needs (the optimizer updates weights in place;
	// the mapped shards are read-only).
	Writable bool
	// Extra is the memory the job needs beyond the weights (KV cache,
	// activations, optimizer state), for the up-front memory check.
	Extra int64
	// ExtraWhat says what Extra is, for the refusal message.
	ExtraWhat string
	// Verify checks the checkpoint before use (magma --verify): every file
	// against the checksums of its manifest.json (VerifyManifest), and
	// every weight for NaN and infinite values (CheckFinite). Errors wrap
	// ckpt.ErrCorrupt and name the file or tensor.
	Verify bool
}

// Load reads config.json, preprocessor_config.json and the safetensors
// weights (single file or shards) of a Magma checkpoint directory, keeping
// the stored dtypes (LoadWith with the zero LoadOptions).
func Load(dir string) (*Loaded, error) { return LoadWith(dir, LoadOptions{}) }

// LoadWith loads a checkpoint directory. The model is built with
// placeholders (no memory) and every parameter is then replaced by the
// checkpoint's tensor: a view of the read-only mapped shard when it is
// stored in the wanted dtype (no copy; the Loaded keeps the shards mapped
// until Close), a converted copy otherwise. Before any tensor is touched,
// the weights' bytes in memory (mapped pages count: they must be resident
// to run) plus opts.Extra are checked against the memory available.
func LoadWith(dir string, opts LoadOptions) (_ *Loaded, err error) {
	var verified *ckpt.Verification
	if opts.Verify {
		// Before anything is parsed: a damaged config or header is then
		// reported as the damaged file it is.
		if verified, err = ckpt.VerifyManifest(dir); err != nil {
			return nil, err
		}
	}
	cfg, pp, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	m, err := newForLoad(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ConfigFileName), err)
	}
	ck, err := openWeights(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ck.Close()
		}
	}()
	plan, err := planWeights(m, ck, opts.Dtype, opts.Writable)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	detail := weightsDetail(plan, opts)
	if opts.Dtype != (tensor.Dtype{}) {
		if stored, err := planWeights(m, ck, tensor.Dtype{}, false); err == nil && stored.Total() < plan.Total() {
			detail += fmt.Sprintf("; in its stored dtypes, without --dtype %s, the weights take %s", strings.ToLower(kernels.DtypeName(opts.Dtype)), kernels.FormatBytes(stored.Total()))
		}
	}
	if err := checkMemoryBytes(plan.Total()+opts.Extra, fmt.Sprintf("model %s", dir), detail); err != nil {
		return nil, err
	}
	stats, err := Bind(m, "", ck, BindOptions{Replace: true, Dtype: opts.Dtype, Writable: opts.Writable})
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	unused, err := Unused(ck.Names(), Binding{Root: m})
	if err != nil {
		return nil, err
	}
	if err := checkLoaded(m, unused); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if opts.Verify {
		if err := ckpt.CheckFinite(m, "", false); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	}
	ld := &Loaded{Model: m, Preprocessor: pp, Dir: dir, Unused: unused, Weights: stats, Verified: verified}
	if stats.InPlace > 0 {
		ld.ck = ck
	} else {
		ck.Close() // nothing mapped: every tensor was copied
	}
	return ld, nil
}

func weightsDetail(plan ckpt.WeightStats, opts LoadOptions) string {
	s := "weights " + plan.String()
	if opts.Extra > 0 {
		what := opts.ExtraWhat
		if what == "" {
			what = "working memory"
		}
		s += fmt.Sprintf(" + %s %s", what, kernels.FormatBytes(opts.Extra))
	}
	return s
}

// Save writes the model in the layout Load reads (config.json,
// preprocessor_config.json, model.safetensors or shards).
func (m *Magma) Save(dir string, pp *PreprocessorConfig, opts ckpt.SaveOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if pp == nil {
		pp = DefaultPreprocessor(m.Config)
	}
	if err := SaveConfig(dir, m.Config, pp); err != nil {
		return err
	}
	ts, err := ckpt.WriteItems(m, "")
	if err != nil {
		return err
	}
	return ckpt.Save(dir, ts, opts)
}

// SaveLinking is Save, except that when every weight is in place in one
// mapped checkpoint (a frozen base under LoRA) the checkpoint's files are
// linked into dir instead of written (LinkWeights): exact (they are the
// bytes the model computes with, in their stored dtypes) and, on the same
// filesystem, free. It returns how the weights were linked, or nil when
// they were written.
func (m *Magma) SaveLinking(dir string, pp *PreprocessorConfig, opts ckpt.SaveOptions) (*ckpt.LinkResult, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := ckpt.RemoveOldCheckpoint(dir); err != nil {
		return nil, err
	}
	res, err := ckpt.LinkWeights(dir, m, opts.Sums)
	if err == nil && res == nil {
		res, err = linkGGUF(dir, m, opts.Sums) // a quantized base (QLoRA)
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if res == nil {
		return nil, m.Save(dir, pp, opts)
	}
	if pp == nil {
		pp = DefaultPreprocessor(m.Config)
	}
	return res, SaveConfig(dir, m.Config, pp)
}
