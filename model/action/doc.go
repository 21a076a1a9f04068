// Package action is how Magma's agent actions are written in its prompts
// and read back from its output, for every consumer alike (data builds
// training samples with it, eval scores with it, server answers with it):
//
//   - robot actions (tokens.go, stats.go, prompt.go): OpenVLA's encoding,
//     which Magma reuses — each dimension normalised to [-1, 1] with the
//     dataset's 1st/99th percentiles (BOUNDS_Q99, statistics in OpenVLA's
//     dataset_statistics.json: DatasetStats, ReadDatasetStatistics,
//     ComputeStats), cut into 256 bins and written as one of the last 256
//     ids of Llama-3's base vocabulary (Tokenizer); the question asked
//     (Prompt);
//   - UI actions (answer.go): ParseAnswer reads a model answer for a
//     screenshot — a Set-of-Mark id and/or a click point in any of the
//     point forms Magma and SeeClick-style models write — and Click
//     resolves it against the marks drawn.
//
// It is a leaf: it imports neither data nor eval (nor any graph package),
// so that serving does not link the training data readers or the
// benchmarks.
package action
