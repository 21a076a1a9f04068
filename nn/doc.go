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
// The package sits between kernels (the ops) and vision/llm/model (the
// models built from these layers); it imports nothing else of the project.
package nn
