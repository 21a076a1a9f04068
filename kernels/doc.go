// Package kernels holds the custom Gorgonia operations the Magma graphs need
// and Gorgonia lacks (depthwise convolution, LayerNorm, RMSNorm, exact GELU,
// SwiGLU, rotary embeddings, grouped-query causal attention with a KV cache,
// cross-entropy with an ignore index, BLAS-backed linear layers, row gathers),
// each with a CPU implementation for float32 and float64 and a backward pass.
//
// Graphs built from these ops (with Gorgonia's own ops in gradient graphs)
// run on the package's execution engine (exec.go): Compile makes a Program
// with a static buffer plan over one arena, an Executor runs it. No Gorgonia
// VM (TapeMachine, LispMachine) runs anywhere in the project.
//
// Layout convention: activations are 2-D row-major matrices. Sequences are
// [batch*seq, features]; images are channels-last [n*h*w, channels], so every
// dense layer is one GEMM and no op needs Gorgonia's broadcasting.
//
// Performance (see scripts/bench/model.sh and the Benchmark* functions):
//
//   - Matrix products go through OpenBLAS (blas.go) switched to one thread;
//     gemm splits large products into row or column blocks over GOMAXPROCS
//     goroutines, so BLAS never competes with the other kernels' goroutines
//     for the cores (OpenBLAS's own threads spin after every call).
//   - float32 elementwise, norm, softmax, cross-entropy and depthwise
//     convolution loops run in vec.c: GCC vector extensions, compiled for
//     x86-64-v4, x86-64-v3 and baseline with target_clones (picked at load
//     time), no -ffast-math. Its float32 erf is within 1.6 ulps of math.Erf,
//     exp within 1 ulp, GELU within 6 ulps of the float64 value (vec_test.go);
//     statistics and softmax/cross-entropy sums stay in float64. float64
//     tensors keep the plain Go loops (reference and gradient-check runs).
//   - Causal attention works on 64-query blocks and skips the keys after
//     each block (the upper triangle), forward and backward.
//
// Storage dtypes (dtype.go, half.go, half.c): parameters may stay bfloat16
// or IEEE half in memory (memory-mapped checkpoint shards, read-only);
// activations and accumulation stay float32. Linear reads a half weight in
// place (a decode GEMV at the machine's read bandwidth, or widened tiles
// and sgemm for prefill, and dx through a frozen weight for LoRA); Gather
// widens the embedding rows it copies; small parameters are widened by a
// Widen op. The vector paths of half.c (AVX-512, AVX2+FMA+F16C, scalar)
// are chosen at run time and each is tested. Results equal the float32 ops
// on the upcast weights up to float32 summation order (half_test.go); no
// kernel writes into a half parameter or differentiates one.//
// Quantized dtypes (quant.go, quant.c): Q8_0, Q4K and Q6K are ggml's
// block_q8_0 (32 weights, 34 bytes), block_q4_K (256 weights, 144 bytes)
// and block_q6_K (256 weights, 210 bytes), byte for byte. In memory a
// quantized weight is a *tensor.Dense whose element type is the block
// struct (BlockQ8_0, BlockQ4K, BlockQ6K) and whose shape is the storage
// shape [out, in/BlockWeights]: blocks run along the input dimension, row
// o is in/BlockWeights consecutive blocks, so a GGUF tensor's bytes are a
// View of the mapping (QuantShape gives the storage shape, LogicalShape the
// logical [out, in]). Names, sizes, ggml type ids and views come from one
// traits table (dtype.go). Dequantize is ggml's dequantize_row_* exactly
// (every product of fp16 scale, 6/8-bit sub-scale and quant is exact in
// float32). Like a half weight, a quantized one is frozen and read in
// place by Linear and Gather (quant_linear.go): decode runs a GEMV with the
// activations quantized to int8 per block and integer dot products
// (llama.cpp's approach; error bound in quant_linear.go), or with float32
// activations when Options.QuantExact is set (the float32 product on the
// dequantized weights up to summation order); prefill dequantizes tiles
// of output rows and runs sgemm; dx = dy·W dequantizes strips of whole
// blocks (QLoRA); Gather dequantizes the rows it copies. quant.c has
// scalar, AVX2+FMA+F16C, AVX-512 (F/BW/VL/DQ) and AVX-512 VNNI paths,
// chosen at run time (SetQuantPath for tests), each tested.
package kernels
