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
// base weight (Linear.MergeLoRA). Where the other LoRA concerns live, each
// in the lowest package that knows what it needs:
//
//   - nn (lora.go): the math — the layer, its init, its merge;
//   - llm (lora.go): which decoder linears get adapters (LoRAConfig,
//     AttachLoRA, LoRAModules), dropout on/off, merging them all;
//   - model/ckpt (adapter.go): PEFT's file format — the file names, the
//     lora_A/lora_B tensor names, adapter_config.json (AdapterConfig) and
//     reading and writing the files;
//   - model (lora.go): the decoder's adapters in PEFT's terms (LoRATensors,
//     LoRAAdapterConfigJSON, ParseLoRAAdapterConfig) and a whole Magma's
//     adapters on disk (SaveLoRA, LoadLoRA, SaveMerged), which inference
//     needs without the trainer — model, not llm, because it is the lowest
//     package that sees both the decoder and ckpt (llm stays below ckpt);
//   - train (lora.go): the adapters as the trainer's trainable tensors
//     (LoRAAdapters, the Adapters of trainable: lora).
//
// Parameters are listed one way, by Parameters (root, prefix) → []Param
// in field order, with ParamNames (tensor → name, for kernels.NewBuilder)
// and ParamCount built on it; vision, llm, model, ckpt and train use these
// and define no listing of their own. Param lives here, not in model/ckpt,
// because it is what a layer declares about its tensors (name, optional,
// norm, no decay), which the optimizer and initialisation need as much as
// checkpoint I/O; ckpt imports nn, never the other way round. Param is the
// one named-tensor type; two records that carry a name beside values are
// other concepts: ckpt.WriteItem is the writers' input (a tensor to be
// written, its values from a float32 slice, a half tensor or a fill
// function, e.g. optimizer moments or a random initialisation never held
// in memory; ckpt.WriteItems makes them from Parameters), and train's
// unexported optSlot is the optimizer's state for one trainable tensor
// (host values, decay flag, AdamW moments).
//
// The package sits between kernels (the ops) and vision/llm/model (the
// models built from these layers); it imports nothing else of the project.
package nn
