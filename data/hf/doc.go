// Package hf reads the data files of Hugging Face `datasets`: Arrow IPC
// (the streaming format `datasets` writes in its cache, `save_to_disk`
// directories and Hub `.arrow` data files, and the random-access file
// format) and Parquet (the Hub's converted form), through Apache Arrow's Go
// module.
//
// # Streaming and projection
//
// Open indexes a file without reading its data: for Arrow, the message
// headers are walked over a read-only memory map (schema, dictionary
// batches, and per record batch its offset and row count); for Parquet,
// the footer gives the row groups. Row reads decode one record batch
// (zero-copy over the map: only the pages of the projected columns of the
// rows asked for are ever faulted in) or one row group of the projected
// columns (Parquet, kept in a small cache). Nothing holds a whole shard in
// memory. Files are mapped lazily, on their first read after indexing.
//
// # Bad input
//
// A record batch whose metadata or body runs past the end of the file (a
// truncated download), unreadable metadata, or a batch arrow-go cannot
// decode is listed in File.Bad with its first row index and the reason;
// the rows before it stay readable. Values are converted with recover()
// around arrow-go accessors, so corrupt offsets become errors, not panics.
package hf
