// Package rlds reads Open X-Embodiment datasets in RLDS form, the layout
// OpenVLA trains from: a TFDS "prepared" directory
//
//	<root>/<dataset>/<version>/
//	    dataset_info.json   builder name, splits, shard lengths
//	    features.json       the feature tree (steps/..., episode_metadata/...)
//	    <builder>-<split>.tfrecord-00000-of-000NN
//
// where every TFRecord record is one episode serialised as a
// tf.train.Example whose keys are the flattened feature paths
// ("steps/observation/image", "steps/action", ...) and whose values hold all
// T steps of that field concatenated (bools as 0/1 int64s, images as encoded
// JPEG/PNG bytes, text as UTF-8 bytes).
//
// Layers, each usable alone:
//   - TFRecord framing (Reader, Writer): length, masked CRC32C of the length,
//     payload, masked CRC32C of the payload; every CRC is checked and a bad
//     one is a *CorruptError naming the file, record index and offset.
//   - tf.train.Example decoding (DecodeExample): a hand-written decoder of
//     the protobuf wire format of tensorflow/core/example/{example,feature}.proto
//     (Example{features=1}, Features{map<string,Feature> feature=1},
//     Feature{oneof bytes_list=1, float_list=2, int64_list=3}, packed or
//     unpacked values). A key filter skips fields that are not needed
//     (column projection); bytes values alias the record buffer.
//   - The dataset directory (Open, Dataset): dataset_info.json and
//     features.json, shards listed by the TFDS file-name template and opened
//     lazily, episodes as per-step columns (Episode).
//   - OpenVLA's per-dataset standardisation (Configs, Standardize): image
//     key, 7-D action and language instruction per OXE dataset, following
//     prismatic/vla/datasets/rlds/oxe/{configs,transforms}.py.
package rlds
