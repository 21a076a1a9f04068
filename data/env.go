package data

import (
	"errors"
	"fmt"
	"log"
	"sync"
	"sync/atomic"

	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/tom"
	"github.com/magma-go/magma/vision/imaging"
)

// ImageOptions are the image-processor settings samples are preprocessed
// with (model.PreprocessorConfig's base_img_size, num_crops, image_mean,
// image_std; MaxCrops may be lowered to keep training grids small).
type ImageOptions struct {
	Base, MaxCrops int
	Mean, Std      [3]float32
	// MaxPixels bounds decoded images (0: imaging.DefaultMaxPixels).
	MaxPixels int
}

// SampleBuilder is what readers need to turn records into samples. It is shared by
// all workers and must not be modified once a stream runs.
type SampleBuilder struct {
	Tokenizer *tokenizer.Tokenizer
	Image     ImageOptions
	// Actions tokenises robot actions (action.NewTokenizer(action.LlamaBaseVocab)
	// when nil).
	Actions *action.Tokenizer
	// Chat is passed to EncodeTraining (system prompt; AddGenerationPrompt
	// is always cleared).
	Chat tokenizer.ChatOptions
	// MaxTokens rejects samples with more tokens (0: no limit).
	MaxTokens int
	// OnError is the bad-record policy ("" means skip).
	OnError ErrorPolicy
	// Logf receives skipped-record messages (log.Printf when nil).
	Logf func(format string, args ...any)
	// Rank and World select this process's shards of sharded sources
	// (AssignShards; World <= 1 reads every shard).
	Rank, World int

	// Tracker and TrackerWeights are the default point-tracker choice of
	// the video and robot sources that set none (tom.NewTracker; the
	// recipe's data-section tracker: and tracker_weights:, data inspect's
	// --tracker and --tracker-weights).
	Tracker, TrackerWeights string

	imageID  int
	skipped  atomic.Int64
	trMu     sync.Mutex
	trackers map[[2]string]tom.Tracker
	lkWarned bool
}

// NewSampleBuilder checks the settings and resolves the <image> token id.
func NewSampleBuilder(tok *tokenizer.Tokenizer, img ImageOptions) (*SampleBuilder, error) {
	e := &SampleBuilder{Tokenizer: tok, Image: img}
	if err := e.init(); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *SampleBuilder) init() error {
	if e.Tokenizer == nil {
		return errors.New("data: env has no tokenizer")
	}
	if e.Image.Base <= 0 || e.Image.MaxCrops <= 0 {
		return fmt.Errorf("data: image base %d and max crops %d must be positive", e.Image.Base, e.Image.MaxCrops)
	}
	for c := 0; c < 3; c++ {
		if !(e.Image.Std[c] > 0) {
			return fmt.Errorf("data: image std %v must be positive", e.Image.Std)
		}
	}
	if err := e.OnError.validate(); err != nil {
		return err
	}
	id, ok := e.Tokenizer.TokenToID(tokenizer.ImageToken)
	if !ok {
		return fmt.Errorf("data: tokenizer has no %s token (use the magma tokenizer)", tokenizer.ImageToken)
	}
	e.imageID = id
	if e.Actions == nil {
		at, err := action.NewTokenizer(action.LlamaBaseVocab)
		if err != nil {
			return err
		}
		e.Actions = at
	}
	return nil
}

// tracker resolves a video or robot source's tracker choice (its own keys,
// else the builder's defaults) with tom.NewTracker. Sources with the same
// choice share one tracker (CoTracker3 weights are loaded once), and the
// LK fallback's warning is logged once per builder.
func (e *SampleBuilder) tracker(source, name, weights string) (tom.Tracker, error) {
	if name == "" && weights == "" {
		name, weights = e.Tracker, e.TrackerWeights
	}
	e.trMu.Lock()
	defer e.trMu.Unlock()
	key := [2]string{name, weights}
	if t, ok := e.trackers[key]; ok {
		return t, nil
	}
	t, warn, err := tom.NewTracker(name, weights)
	if err != nil {
		return nil, fmt.Errorf("data: source %q: %w", source, err)
	}
	if warn != "" && !e.lkWarned {
		e.lkWarned = true
		e.logf("data: warning: %s", warn)
	}
	if e.trackers == nil {
		e.trackers = map[[2]string]tom.Tracker{}
	}
	e.trackers[key] = t
	return t, nil
}

// useTracker makes t the builder's default tracker, already resolved from
// name and weights (its warning, if any, reported by the caller).
func (e *SampleBuilder) useTracker(name, weights string, t tom.Tracker) {
	e.trMu.Lock()
	defer e.trMu.Unlock()
	e.Tracker, e.TrackerWeights, e.lkWarned = name, weights, true
	if e.trackers == nil {
		e.trackers = map[[2]string]tom.Tracker{}
	}
	e.trackers[[2]string{name, weights}] = t
}

// Skipped is the number of records dropped under the skip policy so far.
func (e *SampleBuilder) Skipped() int64 { return e.skipped.Load() }

func (e *SampleBuilder) addSkipped(n int) { e.skipped.Add(int64(n)) }

func (e *SampleBuilder) logf(format string, args ...any) {
	if e.Logf != nil {
		e.Logf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// ImageTokenID is the id of <image>.
func (e *SampleBuilder) ImageTokenID() int { return e.imageID }

func (e *SampleBuilder) decode(path string) (imaging.Image, error) {
	return imaging.DecodeImage(path, imaging.WithMaxPixels(e.Image.MaxPixels))
}

// ChatSample tokenises a conversation for training (only assistant turns
// supervised) with its images: the number of <image> placeholders must
// equal len(images); the images are preprocessed in order.
func (e *SampleBuilder) ChatSample(msgs []tokenizer.Message, images []imaging.Image) (Sample, error) {
	return e.chatSample(msgs, images, e.Image.MaxCrops)
}

// FrameSample is ChatSample for video and robot frames: every image is
// preprocessed with num_crops = 1, as Magma's video and Open-X data classes
// set it ("for pretraining on video, we always set num_crops to 1").
// Assistant messages may carry their answer as token ids (Message.IDs).
func (e *SampleBuilder) FrameSample(msgs []tokenizer.Message, images []imaging.Image) (Sample, error) {
	return e.chatSample(msgs, images, 1)
}

func (e *SampleBuilder) chatSample(msgs []tokenizer.Message, images []imaging.Image, crops int) (Sample, error) {
	o := e.Chat
	o.AddGenerationPrompt = false
	ids, labels, err := e.Tokenizer.EncodeTraining(msgs, o)
	if err != nil {
		return Sample{}, err
	}
	return e.finishCrops(ids, labels, images, crops)
}

// ActionSample is a prompt (user turns, encoded with the assistant header
// that the model continues from) followed by the action token ids and
// <|eot_id|>, which alone are supervised. The ids are appended directly:
// decoding action ids to text and re-encoding would not round-trip.
func (e *SampleBuilder) ActionSample(msgs []tokenizer.Message, images []imaging.Image, actionIDs []int) (Sample, error) {
	o := e.Chat
	o.AddGenerationPrompt = true
	ids, err := e.Tokenizer.EncodeChat(msgs, o)
	if err != nil {
		return Sample{}, err
	}
	labels := make([]int, len(ids), len(ids)+len(actionIDs)+1)
	for i := range labels {
		labels[i] = tokenizer.IgnoreIndex
	}
	ans := append(append([]int(nil), actionIDs...), e.Tokenizer.EOS())
	ids = append(ids, ans...)
	labels = append(labels, ans...)
	return e.finish(ids, labels, images)
}

func (e *SampleBuilder) finish(ids, labels []int, images []imaging.Image) (Sample, error) {
	return e.finishCrops(ids, labels, images, e.Image.MaxCrops)
}

func (e *SampleBuilder) finishCrops(ids, labels []int, images []imaging.Image, crops int) (Sample, error) {
	n := 0
	for _, id := range ids {
		if id == e.imageID {
			n++
		}
	}
	if n != len(images) {
		return Sample{}, fmt.Errorf("%d %s tokens for %d images", n, tokenizer.ImageToken, len(images))
	}
	if e.MaxTokens > 0 && len(ids) > e.MaxTokens {
		return Sample{}, fmt.Errorf("%d tokens exceed max_tokens %d", len(ids), e.MaxTokens)
	}
	s := Sample{IDs: ids, Labels: labels}
	for i, img := range images {
		px, err := imaging.Preprocess(img, e.Image.Base, min(crops, e.Image.MaxCrops), e.Image.Mean, e.Image.Std)
		if err != nil {
			return Sample{}, fmt.Errorf("image %d: %w", i, err)
		}
		s.Images = append(s.Images, px)
	}
	return s, nil
}
