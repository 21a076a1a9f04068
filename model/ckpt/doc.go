// Package ckpt is the checkpoint I/O of the project: the files a model is
// read from and written to, and nothing of the model itself.
//
// What it holds:
//
//   - safetensors reading and writing (safetensors.go): the header, every
//     float dtype (F32, BF16, F16, F64) widened to float32 on read, tensors
//     written (WriteItem; WriteItems lists a model's parameters as such)
//     from float32 slices, half tensors or fill functions, chunk by chunk;
//   - memory mapping (mmap.go): a tensor stored in the dtype it is used in
//     is a read-only view of the mapped file (SafetensorsFile.Dense,
//     Checkpoint.Dense), MappedSource names the file and tensor of a view;
//   - Hugging Face checkpoint folders (checkpoint.go): model.safetensors or
//     shards with model.safetensors.index.json (Index), Open, Save with
//     5 GB shards, the tokenizer files;
//   - checksum manifests (manifest.go): manifest.json with the CRC-32C of
//     every file, VerifyManifest, and the NaN/Inf checks of weights
//     (CheckFinite, CheckFiniteValues) that report a corrupt checkpoint
//     (ErrCorrupt);
//   - hard-linking a frozen base's files into a new checkpoint (link.go);
//   - PEFT's adapter format (adapter.go): adapter_model.safetensors with
//     its lora_A/lora_B tensor names, adapter_config.json (AdapterConfig);
//   - what loading will hold in memory, by dtype, in place or copied
//     (weights.go: WeightStats, Checkpoint.Plan), from the headers alone;
//   - logits files for the parity checks (logits.go).
//
// What it does not hold: which tensors a model has and what they are called
// (the `weights:"..."` tags, walked by package nn), how a checkpoint's
// tensors are bound to a model, configs and presets (package model), and
// which adapters a model has (packages llm and model). ckpt imports kernels
// and nn only (and model/internal/fshook, its tests' hook on os.Link), never
// llm or model: model (PEFT names and config of the decoder's adapters),
// train, cmd, server and the benchmarks import it. Formats to come (PyTorch .pth)
// belong here, beside safetensors, behind the same Checkpoint-like surface
// (Names, Has, Info, Tensor, Dense); GGUF has its own package, model/gguf,
// with that surface (Names, Has, Info, Tensor, Dense).
package ckpt
