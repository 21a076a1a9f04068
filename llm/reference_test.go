package llm

import (
	"math"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/nn"
)

// refLlama is a plain float64 Llama forward pass (loops, no graph) written
// from the Hugging Face LlamaForCausalLM definition, used as the ground truth
// for the graph implementation.
type refLlama struct {
	cfg    Config
	embed  [][]float64 // [V][D]
	layers []refLayer
	norm   []float64
	head   [][]float64 // [V][D]
}

type refLayer struct {
	inNorm, postNorm []float64
	q, k, v, o       [][]float64 // [out][in]
	gate, up, down   [][]float64
}

func refMatrix(t *tensor.Dense) [][]float64 {
	vals, err := nn.Float64s(t)
	if err != nil {
		panic(err)
	}
	r, c := t.Shape()[0], t.Shape()[1]
	out := make([][]float64, r)
	for i := range out {
		out[i] = vals[i*c : (i+1)*c]
	}
	return out
}

func refVector(t *tensor.Dense) []float64 {
	vals, err := nn.Float64s(t)
	if err != nil {
		panic(err)
	}
	return vals
}

func newRefLlama(m *Model) *refLlama {
	r := &refLlama{cfg: m.Config, embed: refMatrix(m.Decoder.EmbedTokens.Weight),
		norm: refVector(m.Decoder.Norm.Weight), head: refMatrix(m.LMHead.Weight)}
	for i := range m.Decoder.Layers {
		L := &m.Decoder.Layers[i]
		r.layers = append(r.layers, refLayer{
			inNorm: refVector(L.InputNorm.Weight), postNorm: refVector(L.PostNorm.Weight),
			q: refMatrix(L.SelfAttention.Query.Weight), k: refMatrix(L.SelfAttention.Key.Weight),
			v: refMatrix(L.SelfAttention.Value.Weight), o: refMatrix(L.SelfAttention.Output.Weight),
			gate: refMatrix(L.MLP.Gate.Weight), up: refMatrix(L.MLP.Up.Weight), down: refMatrix(L.MLP.Down.Weight),
		})
	}
	return r
}

// matvec returns W·x for W [out][in].
func matvec(w [][]float64, x []float64) []float64 {
	y := make([]float64, len(w))
	for o, row := range w {
		var s float64
		for i, v := range row {
			s += v * x[i]
		}
		y[o] = s
	}
	return y
}

func rmsnorm(x, w []float64, eps float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+eps)
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = v * inv * w[i]
	}
	return y
}

// rope applies HF rotate-half rotary embedding in place to each head of x.
func rope(x []float64, heads, hd int, pos, theta float64) {
	half := hd / 2
	for h := 0; h < heads; h++ {
		base := x[h*hd : (h+1)*hd]
		for i := 0; i < half; i++ {
			invFreq := math.Pow(theta, -float64(2*i)/float64(hd))
			ang := pos * invFreq
			c, s := math.Cos(ang), math.Sin(ang)
			a, b := base[i], base[i+half]
			base[i] = a*c - b*s
			base[i+half] = b*c + a*s
		}
	}
}

// forwardEmbeds returns the logits [T][V] for input embeddings x [T][D] at
// positions 0..T-1.
func (r *refLlama) forwardEmbeds(x [][]float64) [][]float64 {
	cfg := r.cfg
	H, KV, hd := cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HeadDim
	T := len(x)
	h := make([][]float64, T)
	for t := range x {
		h[t] = append([]float64(nil), x[t]...)
	}
	for _, L := range r.layers {
		qs, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for t := 0; t < T; t++ {
			n := rmsnorm(h[t], L.inNorm, cfg.RMSNormEps)
			qs[t], ks[t], vs[t] = matvec(L.q, n), matvec(L.k, n), matvec(L.v, n)
			rope(qs[t], H, hd, float64(t), cfg.RopeTheta)
			rope(ks[t], KV, hd, float64(t), cfg.RopeTheta)
		}
		for t := 0; t < T; t++ {
			att := make([]float64, H*hd)
			for hh := 0; hh < H; hh++ {
				g := hh / (H / KV)
				q := qs[t][hh*hd : (hh+1)*hd]
				scores := make([]float64, t+1)
				mx := math.Inf(-1)
				for s := 0; s <= t; s++ {
					k := ks[s][g*hd : (g+1)*hd]
					var d float64
					for i := range q {
						d += q[i] * k[i]
					}
					scores[s] = d / math.Sqrt(float64(hd))
					mx = math.Max(mx, scores[s])
				}
				var z float64
				for s := range scores {
					scores[s] = math.Exp(scores[s] - mx)
					z += scores[s]
				}
				for s := range scores {
					v := vs[s][g*hd : (g+1)*hd]
					for i := range v {
						att[hh*hd+i] += scores[s] / z * v[i]
					}
				}
			}
			o := matvec(L.o, att)
			for i := range o {
				h[t][i] += o[i]
			}
			n := rmsnorm(h[t], L.postNorm, cfg.RMSNormEps)
			gt, up := matvec(L.gate, n), matvec(L.up, n)
			for i := range gt {
				gt[i] = gt[i] / (1 + math.Exp(-gt[i])) * up[i]
			}
			d := matvec(L.down, gt)
			for i := range d {
				h[t][i] += d[i]
			}
		}
	}
	logits := make([][]float64, T)
	for t := range h {
		logits[t] = matvec(r.head, rmsnorm(h[t], r.norm, cfg.RMSNormEps))
	}
	return logits
}

func (r *refLlama) forward(ids []int) [][]float64 {
	x := make([][]float64, len(ids))
	for t, id := range ids {
		x[t] = r.embed[id]
	}
	return r.forwardEmbeds(x)
}

// relDiff returns max|a-b| / max|b|.
func relDiff(a []float32, b []float64) float64 {
	var num, den float64
	for i := range b {
		num = math.Max(num, math.Abs(float64(a[i])-b[i]))
		den = math.Max(den, math.Abs(b[i]))
	}
	if den == 0 {
		return num
	}
	return num / den
}
