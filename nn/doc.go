// Package nn holds the layers that the vision tower, the decoder and the
// Magma composition share — Linear (with its LoRA hook), LayerNorm, RMSNorm
// and Embedding — and the walker of the `weights:"..."` struct tags by which
// every layer names its parameters after the checkpoint.
//
// A layer is a struct of host tensors (*tensor.Dense, PyTorch layouts)
// whose Forward adds its ops to a kernels.Builder. Forward returns only a
// node: a missing weight or a shape mismatch is recorded in the Builder
// under its scope path (one policy for every layer) and checked once by the
// code that compiles the graph.
//
// LoRA's math is here too (lora.go): the adapter layer (A, B, alpha/r,
// dropout), its Kaiming initialisation (NewLoRA) and its merge into the
// base weight (Linear.MergeLoRA). Which decoder layers get adapters and
// adapter_config.json are package llm's, the Magma glue package model's,
// the PEFT files package model/ckpt's, and the trainable adapters package
// train's (LoRAAdapters).
//
// Parameters are listed one way, by Parameters (root, prefix) → []Param
// in field order, with ParamNames (tensor → name, for kernels.NewBuilder)
// and ParamCount built on it; vision, llm, model and train use these and
// define no listing of their own. Param lives here, not in model/ckpt,
// because it is what a layer declares about its tensors (name, optional,
// norm, no decay), which the optimizer and initialisation need as much as
// checkpoint I/O; ckpt imports nn, never the other way round.
// ckpt.WriteItem is not a second parameter type but a tensor to be
// written (values from a float32 slice, a half tensor or a fill function,
// e.g. optimizer moments or a random initialisation never held in memory).
//
// The package sits between kernels (the ops) and vision/llm/model (the
// models built from these layers); it imports nothing else of the project.
package nn
