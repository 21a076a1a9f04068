package model

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/vision/imaging"
	"gorgonia.org/tensor"
)

// TestPrepare checks the one prompt → embeddings path of Generate and the
// server: a text prompt's embeddings are exactly those of the composition
// (EmbedSequence), for stored and bf16 weights; the context, image and
// cancellation errors are typed.
func TestPrepare(t *testing.T) {
	ctx := context.Background()
	ids := []int{1, 5, 7, 9, 300}
	for _, dt := range []tensor.Dtype{{}, kernels.BFloat16} {
		p, err := LoadPipelineWith(parityDir, "", LoadOptions{Dtype: dt})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if w := p.Model.LM.Decoder.EmbedTokens.Weight.Dtype(); dt != (tensor.Dtype{}) && w != dt {
			t.Fatalf("weights loaded as %v, want %v", w, dt)
		}
		pr, err := p.Prepare(ctx, ids, nil, 4)
		if err != nil {
			t.Fatal(err)
		}
		emb, err := p.Model.EmbedSequence(ids, nil)
		if err != nil {
			t.Fatal(err)
		}
		if pr.Positions != len(ids) || !pr.Embeds.Shape().Eq(emb.Embeds.Shape()) || pr.Embeds.Dtype() != emb.Embeds.Dtype() {
			t.Fatalf("%v: prepared %d positions %v %v, composition %v %v", dt, pr.Positions, pr.Embeds.Shape(), pr.Embeds.Dtype(), emb.Embeds.Shape(), emb.Embeds.Dtype())
		}
		got, want := pr.Embeds.Data().([]float32), emb.Embeds.Data().([]float32)
		if !slices.Equal(got, want) {
			t.Errorf("%v: text embeddings differ from EmbedSequence's", dt)
		}
		if !slices.Equal(pr.StopIDs, p.StopIDs()) || len(pr.StopIDs) == 0 {
			t.Errorf("stop ids %v, want %v", pr.StopIDs, p.StopIDs())
		}
	}

	p, err := LoadPipeline(parityDir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	limit, setting := p.ContextLimit()
	p.MaxContext = 16
	if l, s := p.ContextLimit(); l != 16 || s != "--max-context" || setting != "max_position_embeddings" || limit <= 16 {
		t.Fatalf("context limit %d %s (unset: %d %s)", l, s, limit, setting)
	}
	var ce *ContextError
	if _, err := p.Prepare(ctx, make([]int, 10), nil, 7); !errors.As(err, &ce) || ce.Positions != 10 || ce.NewTokens != 7 || ce.Limit != 16 {
		t.Errorf("10 + 7 positions in 16: %v", err)
	}
	if _, err := p.Prepare(ctx, make([]int, 16), nil, 0); !errors.As(err, &ce) || ce.NewTokens != 0 {
		t.Errorf("16 positions, no room for a token: %v", err)
	}
	if _, err := p.Prepare(ctx, make([]int, 15), nil, 0); err != nil {
		t.Errorf("15 positions leave one: %v", err)
	}
	p.MaxContext = 0
	var ie *ImageError
	img := p.Model.Config.ImageTokenIndex
	if _, err := p.Prepare(ctx, []int{1, img, 5}, []imaging.Image{{}}, 1); !errors.As(err, &ie) || ie.Index != 0 {
		t.Errorf("empty image: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Prepare(cancelled, ids, nil, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
