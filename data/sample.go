package data

import (
	"context"

	"github.com/magma-go/magma/vision"
)

// Sample is one training example after decoding, marking and tokenising:
// the unit the data pipeline hands to the trainer.
type Sample struct {
	// IDs are prompt+answer token ids with one image token per image.
	IDs []int
	// Labels are aligned with IDs (Hugging Face convention, shifted inside
	// the loss): the id where supervised, tokenizer.IgnoreIndex elsewhere.
	Labels []int
	// Images are preprocessed (anyres crops), in the order of their image tokens.
	Images []*vision.Pixels
	// Source and Index name the record this sample came from (for errors).
	Source string
	Index  int
}

// Batch is a group of samples the trainer steps on together.
type Batch struct {
	Samples []Sample
}

// Stream delivers batches in a deterministic order for a seed. State is a
// JSON-serialisable position saved in checkpoints; a stream restored from it
// continues with exactly the batches the original would have produced next.
type Stream interface {
	Next(ctx context.Context) (Batch, error)
	State() ([]byte, error)
	Close() error
}
