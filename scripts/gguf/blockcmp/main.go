// Command blockcmp compares the tensors two GGUF files hold under the same
// name, type and shape, byte for byte: e.g. blocks written by llama.cpp's
// quantizer and by ours from the same float32 weights. Both files are read
// with model/gguf (so llama.cpp's files also exercise our reader).
//
//	go run ./scripts/gguf/blockcmp A.gguf B.gguf [TYPE...]
//
// With TYPE (Q8_0, Q4_K, Q6_K...) only tensors of those types count. Exit
// status 1 when a compared tensor differs or nothing could be compared.
package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"

	"github.com/magma-go/magma/model/gguf"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: blockcmp A.gguf B.gguf [TYPE...]")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3:]); err != nil {
		fmt.Fprintln(os.Stderr, "blockcmp:", err)
		os.Exit(1)
	}
}

func run(pa, pb string, types []string) error {
	a, err := gguf.Open(pa)
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := gguf.Open(pb)
	if err != nil {
		return err
	}
	defer b.Close()
	type count struct{ same, differ, blocks, blocksDiffer int }
	by := map[gguf.TensorType]*count{}
	var order []gguf.TensorType
	skipped := 0
	for _, ta := range a.Tensors {
		tb, err := b.Info(ta.Name)
		if err != nil || tb.Type != ta.Type || !slices.Equal(tb.Dims, ta.Dims) || ta.Type.BlockWeights() == 1 ||
			(len(types) > 0 && !slices.Contains(types, ta.Type.String())) {
			skipped++
			continue
		}
		ba, _, _ := a.TensorBytes(ta.Name)
		bb, _, _ := b.TensorBytes(ta.Name)
		c := by[ta.Type]
		if c == nil {
			c = &count{}
			by[ta.Type] = c
			order = append(order, ta.Type)
		}
		bs := ta.Type.BlockBytes()
		nd := 0
		for i := 0; i < len(ba); i += bs {
			if !bytes.Equal(ba[i:i+bs], bb[i:i+bs]) {
				if nd == 0 {
					fmt.Printf("  %s (%v): block %d differs: %x vs %x\n", ta.Name, ta.Type, i/bs, ba[i:i+min(bs, 16)], bb[i:i+min(bs, 16)])
				}
				nd++
			}
		}
		c.blocks += len(ba) / bs
		c.blocksDiffer += nd
		if nd == 0 {
			c.same++
		} else {
			c.differ++
		}
	}
	total, bad := 0, 0
	for _, t := range order {
		c := by[t]
		fmt.Printf("%v: %d tensors byte-identical, %d differ (%d of %d blocks)\n", t, c.same, c.differ, c.blocksDiffer, c.blocks)
		total += c.same + c.differ
		bad += c.differ
	}
	fmt.Printf("%d quantized tensors compared, %d not (absent, another type or float)\n", total, skipped)
	if total == 0 {
		return fmt.Errorf("no quantized tensor of %s and %s has the same name, type and shape", pa, pb)
	}
	if bad > 0 {
		return fmt.Errorf("%d tensors differ", bad)
	}
	return nil
}
