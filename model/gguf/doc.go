// Package gguf reads and writes GGUF version 3 files, the single-file model
// container of ggml and llama.cpp (spec: ggml-org/ggml docs/gguf.md).
//
// Layout (all little-endian): the magic "GGUF", uint32 version 3, uint64
// tensor count, uint64 metadata count; the metadata key/value pairs (key:
// uint64 length + bytes; uint32 value type; value); the tensor infos (name,
// uint32 number of dimensions, uint64 dimensions in ggml order, uint32 ggml
// type, uint64 offset relative to the start of the data section); zero
// padding to general.alignment (32 when the key is absent); the tensor data,
// each tensor at a multiple of the alignment.
//
// Dimensions: ggml lists a tensor's dimensions innermost first (ne[0] is the
// contiguous row length); this project's shapes are row-major, outermost
// first. TensorInfo.Shape and GGMLDims are the one place the two orders are
// converted. A weight of shape [out, in] is stored with dims [in, out].
//
// Reading (Open): the file is memory-mapped read-only and every byte of the
// header is validated before anything is returned (magic, version, counts,
// string lengths, value types, booleans, nesting, key uniqueness, number of
// dimensions, dimension products against overflow, tensor types and their
// block sizes, offsets inside the file, alignment, overlapping tensors).
// Errors name the file and the key or tensor. A tensor's bytes are a slice
// of the mapping (File.TensorBytes, File.Dense), used in place; File.Tensor
// widens F32/F16/BF16 (and quantized types once a dequantizer is registered
// with RegisterDequantizer) to float32, so *File satisfies model.TensorSource.
//
// Writing (Writer): metadata and tensor infos are declared first, the
// header is written with every tensor's offset computed from its shape and
// type, then the tensors' bytes are streamed one tensor at a time
// (BeginTensor returns an io.Writer), so a model larger than memory is
// written without holding it.
//
// Block sizes, quantizers and dequantizers of Q8_0, Q4_K and Q6_K are the
// kernels package's (its block dtypes); F32, F16, BF16 and Q4_0 (read only)
// are known here.
//
// llama.cpp's `llama` architecture (llama.go, tokenizer.go, export.go): the
// tensor names, the Q/K row permutation (LlamaQKPermutation), the llama.*
// hyperparameters and the tokenizer.* metadata its converter
// (convert_hf_to_gguf.py) writes, and ExportLlama, which streams a
// checkpoint's Llama decoder into such a file (magma export gguf).
package gguf
