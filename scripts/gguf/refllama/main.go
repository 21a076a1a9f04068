// Command refllama is a naive reference forward pass of a llama.cpp `llama`
// GGUF file (read with model/gguf): the next-token logits of a prompt of
// token ids at its last position, written as a safetensors file (tensor
// "logits" [1, vocab], like magma generate --logits-out), for
// scripts/gguf/llamacpp_logits.mjs to compare with llama.cpp.
//
//	go run ./scripts/gguf/refllama [-round-bf16] MODEL.gguf ID,ID,... OUT.safetensors
//
// It follows the file's own conventions (llama.cpp's tensor names, adjacent
// RoPE pairs on the permuted Q/K rows, the llama.* hyperparameters), in
// float64 arithmetic. With -round-bf16 the input of every product with a
// BF16 weight is rounded to bfloat16 first, as llama.cpp's CPU BF16 matrix
// product does (its vec_dot_type for BF16 is BF16): comparing both variants
// with llama.cpp and with magma tells which arithmetic a difference comes
// from.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/model/gguf"
)

func main() {
	round := flag.Bool("round-bf16", false, "round the input of products with BF16 weights to bfloat16 (llama.cpp's CPU BF16 path)")
	flag.Parse()
	if flag.NArg() != 3 {
		fmt.Fprintln(os.Stderr, "usage: refllama [-round-bf16] MODEL.gguf ID,ID,... OUT.safetensors")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), flag.Arg(2), *round); err != nil {
		fmt.Fprintln(os.Stderr, "refllama:", err)
		os.Exit(1)
	}
}

type weight struct {
	w        []float32
	out, in  int
	roundsIn bool // a BF16 weight with -round-bf16
}

func run(path, idsArg, out string, round bool) error {
	g, err := gguf.Open(path)
	if err != nil {
		return err
	}
	defer g.Close()
	var ids []int
	for _, s := range strings.Split(idsArg, ",") {
		id, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("token id %q: %w", s, err)
		}
		ids = append(ids, id)
	}
	u := func(key string) int {
		v, e := g.Uint(key)
		if e != nil && err == nil {
			err = e
		}
		return int(v)
	}
	layers, heads, kvHeads := u("llama.block_count"), u("llama.attention.head_count"), u("llama.attention.head_count_kv")
	hd := u("llama.rope.dimension_count")
	if err != nil {
		return err
	}
	eps, err := g.Float("llama.attention.layer_norm_rms_epsilon")
	if err != nil {
		return err
	}
	base, err := g.Float("llama.rope.freq_base")
	if err != nil {
		return err
	}
	load := func(name string) (weight, error) {
		v, shape, err := g.Tensor(name)
		if err != nil {
			return weight{}, err
		}
		ti, _ := g.Info(name)
		w := weight{w: v, out: 1, in: shape[len(shape)-1], roundsIn: round && ti.Type == gguf.TypeBF16}
		if len(shape) == 2 {
			w.out = shape[0]
		}
		return w, nil
	}
	emb, err := load("token_embd.weight")
	if err != nil {
		return err
	}
	d := emb.in
	T := len(ids)
	x := make([][]float64, T)
	for t, id := range ids {
		if id < 0 || id >= emb.out {
			return fmt.Errorf("token id %d outside the vocabulary of %d", id, emb.out)
		}
		x[t] = make([]float64, d)
		for i := range x[t] {
			x[t][i] = float64(emb.w[id*d+i])
		}
	}
	rms := func(v []float64, w weight) []float64 {
		var s float64
		for _, e := range v {
			s += e * e
		}
		r := 1 / math.Sqrt(s/float64(len(v))+eps)
		o := make([]float64, len(v))
		for i, e := range v {
			o[i] = float64(float32(e*r)) * float64(w.w[i])
		}
		return o
	}
	mv := func(w weight, v []float64) []float64 {
		in := v
		if w.roundsIn {
			in = make([]float64, len(v))
			for i, e := range v {
				in[i] = float64(kernels.BF16ToFloat32(kernels.Float32ToBF16(float32(e))))
			}
		}
		o := make([]float64, w.out)
		for r := range o {
			row := w.w[r*w.in : (r+1)*w.in]
			var s float64
			for i, e := range row {
				s += float64(e) * in[i]
			}
			o[r] = s
		}
		return o
	}
	rope := func(v []float64, pos int) {
		for h := 0; h < len(v)/hd; h++ {
			for i := 0; i < hd/2; i++ {
				a := float64(pos) * math.Pow(base, -2*float64(i)/float64(hd))
				c, s := math.Cos(a), math.Sin(a)
				p, q := v[h*hd+2*i], v[h*hd+2*i+1]
				v[h*hd+2*i], v[h*hd+2*i+1] = p*c-q*s, p*s+q*c
			}
		}
	}
	for l := 0; l < layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		ws := map[string]weight{}
		for _, n := range []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"} {
			if ws[n], err = load(p + n + ".weight"); err != nil {
				return err
			}
		}
		K, V := make([][]float64, T), make([][]float64, T)
		Q := make([][]float64, T)
		for t := 0; t < T; t++ {
			h := rms(x[t], ws["attn_norm"])
			Q[t], K[t], V[t] = mv(ws["attn_q"], h), mv(ws["attn_k"], h), mv(ws["attn_v"], h)
			rope(Q[t], t)
			rope(K[t], t)
		}
		for t := 0; t < T; t++ {
			att := make([]float64, heads*hd)
			for h := 0; h < heads; h++ {
				kh := h / (heads / kvHeads)
				sc := make([]float64, t+1)
				mx := math.Inf(-1)
				for s := 0; s <= t; s++ {
					var dot float64
					for i := 0; i < hd; i++ {
						dot += Q[t][h*hd+i] * K[s][kh*hd+i]
					}
					sc[s] = dot / math.Sqrt(float64(hd))
					mx = math.Max(mx, sc[s])
				}
				var sum float64
				for s := range sc {
					sc[s] = math.Exp(sc[s] - mx)
					sum += sc[s]
				}
				for s := range sc {
					for i := 0; i < hd; i++ {
						att[h*hd+i] += sc[s] / sum * V[s][kh*hd+i]
					}
				}
			}
			o := mv(ws["attn_output"], att)
			for i := range x[t] {
				x[t][i] += o[i]
			}
			h := rms(x[t], ws["ffn_norm"])
			gt, up := mv(ws["ffn_gate"], h), mv(ws["ffn_up"], h)
			for i := range gt {
				gt[i] = gt[i] / (1 + math.Exp(-gt[i])) * up[i]
			}
			dn := mv(ws["ffn_down"], gt)
			for i := range x[t] {
				x[t][i] += dn[i]
			}
		}
	}
	norm, err := load("output_norm.weight")
	if err != nil {
		return err
	}
	head, err := load("output.weight")
	if err != nil {
		return err
	}
	logits := mv(head, rms(x[T-1], norm))
	row := make([]float32, len(logits))
	for i, v := range logits {
		row[i] = float32(v)
	}
	return ckpt.WriteLogits(out, [][]float32{row})
}
