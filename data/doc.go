// Package data is Magma's training data pipeline: readers for the published
// formats, a weighted mixture streamed by worker goroutines, batching
// helpers, and the embedded synthetic default mixture.
//
// # Contract with the trainer
//
// Sample (ids, labels with tokenizer.IgnoreIndex on everything but the answers, one
// <image> token per preprocessed image), Batch and Stream (Next, State,
// Close) are defined in sample.go. MixtureStream implements Stream.
//
// # Readers (type in the YAML)
//
// The types a recipe accepts, and what opens each, are one table
// (sources.go); InspectTypes are its names.
//
//   - llava: LLaVA conversation JSON / JSON lines (LLaVASource).
//   - ui: SeeClick/ScreenSpot-style UI records → SoM-marked grounding
//     conversations, subtasks text_2_point/text_2_bbox/point_2_text/
//     bbox_2_text drawn 0.4/0.4/0.1/0.1 (UISource; box formats there).
//   - video: clip manifests → SoM/ToM/caption samples computed in-process
//     with package tom (VideoSource).
//   - robot: episode folders (episode.json + frames) → OpenVLA-style action
//     token samples with q01/q99 statistics, plus ToM samples (RobotSource).
//   - LiberoSource (libero.go) reads LIBERO HDF5 demos, or OpenVLA's modified
//     LIBERO RLDS release (libero_rlds.go), for finetuning. What a LIBERO
//     checkpoint records of its demos (statistics, split) is written and
//     read back in libero_meta.go only.
//   - rlds: Open X-Embodiment / OpenVLA RLDS directories (TFRecord shards of
//     tf.train.Example episodes, package data/rlds) → OpenVLA action samples
//     with statistics computed in one streaming pass (RLDSSource).
//   - magma_tom: MagmaAI/Magma-Video-ToM and Magma-OXE-ToM `.arrow` shards
//     (package data/hf): pre-extracted CoTracker traces → ToM / SoM /
//     caption / action samples via tom.RunTracks (MagmaToMSource).
//   - magma_som: MagmaAI/Magma-Mind2Web-SoM and Magma-AITW-SoM (Arrow or
//     Parquet): marked screenshot + conversation, passed through
//     (MagmaSoMSource). Magma-820K is one LLaVA-style JSON file: type llava.
//
// Inspect (`magma data inspect`) opens any of these without a tokenizer
// (InspectTypes; a folder with one annotation file is read through it) and
// renders one record with its marks and traces drawn. A source without one
// usable record is an error listing the first rejected records (file,
// index, reason).
//
// Sharded sources deal their shard files to ranks with AssignShards
// (SampleBuilder.Rank, SampleBuilder.World) and open them lazily.
//
// Each reader validates records while indexing (structure, roles, boxes,
// action length, finite numbers) and while building samples (missing or
// undecodable images/videos, boxes outside the decoded image, clips too
// short); a bad record is a *RecordError{Path, Index, Reason}. With
// on_error: skip (default) it is dropped, counted (SampleBuilder.Skipped,
// MixtureStream.Skipped) and logged; with on_error: stop the constructor
// or Stream.Next returns it.
//
// # Mixture and determinism
//
// A single sampler goroutine draws, for sequence numbers 0, 1, 2, ..., a
// source by weight and the next record of that source's per-epoch shuffled
// order (every record once per epoch), plus a per-sample seed; worker
// goroutines build samples out of order with rand.NewPCG(seed, seq) as
// their only randomness, and Next re-orders them through a window of
// Prefetch sequence numbers. The output depends only on the seed and the
// data, not on the worker count or timing. State is the sampler's position
// after the last returned batch (sequence number, PCG state, per-source
// epoch/offset, skip count) as JSON; a stream opened with it continues with
// exactly the batches the original would have produced. Cancelling the
// stream's context or Close stops every goroutine.
//
// # Augmentation
//
// None: images are only marked (SoM) and preprocessed (imaging.Preprocess,
// anyres crops). The randomness per sample is the choice of subtasks,
// marked elements and mark ids (UI), clip start, task kind and ToM seed
// (video, robot).
//
// # Batching
//
// Batches groups samples; Batch.Pad right-pads to the longest sample
// rounded up to a multiple of a bucket (Padded: ids, labels, attention
// mask, padding share), so that batches of similar lengths share one
// compiled graph shape; Bucketing reports the shapes and the padding waste
// of a bucket size over a set of batches. Images per sample keep their own
// crop grid (Pixels.Rows x Cols); capping max_crops (1 in the tiny recipe)
// makes every image one crop.
//
// # Synthetic default
//
// GenerateSynthetic writes UI screenshots (buttons, text fields, icons,
// labels drawn with gocv, SeeClick-style records with pixel boxes), MJPG
// .avi clips of a shape moving over a grey texture (every other clip with
// a camera pan), robot episodes (PNG frames, a gripper reaching an object,
// 7-DoF actions) and LLaVA image-caption pairs; SyntheticSources are the
// matching sources (a kind with a count of 0 is left out). See
// MixtureConfig for the YAML; every key is bounded (SyntheticLimits,
// MaxSyntheticPixels) and a given value is never replaced by a default.
package data
