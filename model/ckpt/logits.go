package ckpt

import "fmt"

// WriteLogits stores per-step logits as one F32 tensor "logits" [steps, vocab].
func WriteLogits(path string, rows [][]float32) error {
	if len(rows) == 0 {
		return fmt.Errorf("write logits %s: no generation steps", path)
	}
	v := len(rows[0])
	data := make([]float32, 0, len(rows)*v)
	for _, r := range rows {
		data = append(data, r...)
	}
	return WriteSafetensors(path, []WriteItem{{Name: "logits", Shape: []int{len(rows), v}, Data: data}}, WriteOptions{})
}
