// Package model is Magma put together: the ConvNeXt trunk (package vision),
// the mlp2x_gelu projector with its learned row separator, and the Llama-3
// decoder (package llm), under the parameter names of the published
// microsoft/Magma-8B checkpoint.
//
// The composition is written once, over a batch (batch.go, magma.go):
// PlanBatch checks sequences and computes the shape a graph depends on,
// Fill lays them out as index inputs, and Embed / Forward / Loss add the
// vision tower, projector, stitching, splice, decoder and loss to a
// kernels.Builder. Inference is a batch of one (EmbedSequence, then the
// KV-cached generator of package llm); training builds Loss and its
// gradients (BuildGradients) once per batch shape.
//
// The rest of the package is what ties the model to its files: configs
// (config.go, with presets from package configs), weight binding by the
// `weights:"..."` tags (weights.go: Bind, for load and resume alike, over
// the walker of package nn; weightmem.go: the memory a load will take),
// loading and saving a whole Magma (load.go), the decoder's
// LoRA adapters in a checkpoint (lora.go), random initialisation, memory
// checks, and the generation pipeline used by generate, eval and serve
// (pipeline.go). Quantized checkpoints (quantize.go: magma quantize, the
// QuantTypeFor table of which tensor takes which ggml block type, streamed
// into one GGUF; gguf_weights.go: a quantized folder's GGUF bound in place
// like a safetensors shard) use the quantizers of package kernels and the
// GGUF container of package model/gguf. The file formats themselves
// (safetensors, mapping, shards, manifests, linking, PEFT adapter files)
// are package model/ckpt.
package model
