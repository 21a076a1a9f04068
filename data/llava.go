package data

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"

	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/vision"
)

// Source is one dataset of a mixture: a fixed number of records, each of
// which a worker turns into a Sample. Sample must be safe for concurrent
// use and deterministic given (index, the rng's state); a bad record is
// reported as a *RecordError.
type Source interface {
	Name() string
	Len() int
	Sample(index int, rng *rand.Rand) (Sample, error)
}

// LLaVASource reads LLaVA-style conversation data: a JSON array (or JSON
// lines) of
//
//	{"id": "000000033471", "image": "coco/train2017/000000033471.jpg",
//	 "conversations": [{"from": "human", "value": "<image>\nWhat are the colors of the bus?"},
//	                   {"from": "gpt", "value": "The bus is white and red."}, ...]}
//
// "image" is relative to the image folder (default: the annotation file's
// folder); it may also be a list of names (several <image> placeholders) or
// absent (text-only). Roles are human/gpt (user/assistant and a leading
// system turn are accepted). When a record has images but no <image>
// placeholder, one per image is put in front of the first human turn, as
// LLaVA does; otherwise placeholders and images must match in number.
// Only the gpt turns are supervised.
type LLaVASource struct {
	name, path, folder string
	env                *SampleBuilder
	recs               []llavaRecord
}

type llavaTurn struct {
	From  string  `json:"from"`
	Value *string `json:"value"`
}

type llavaRecord struct {
	index  int
	images []string
	msgs   []tokenizer.Message
}

type llavaJSON struct {
	ID            json.RawMessage `json:"id"`
	Image         json.RawMessage `json:"image"`
	Conversations []llavaTurn     `json:"conversations"`
}

// NewLLaVASource indexes and validates an annotation file. Bad records are
// skipped (counted in env) or, under OnErrorStop, returned as the error.
func NewLLaVASource(env *SampleBuilder, name, path, imageFolder string) (*LLaVASource, error) {
	if imageFolder == "" {
		imageFolder = filepath.Dir(path)
	}
	recs, err := loadRecords(env, path, func(index int, data []byte) (llavaRecord, error) {
		rec, err := parseLLaVA(data)
		rec.index = index
		return rec, err
	})
	if err != nil {
		return nil, err
	}
	return &LLaVASource{name: name, path: path, folder: imageFolder, env: env, recs: recs}, nil
}

func parseLLaVA(data []byte) (llavaRecord, error) {
	var j llavaJSON
	if err := strictDecode(data, &j); err != nil {
		return llavaRecord{}, fmt.Errorf("not a LLaVA record: %v", err)
	}
	var rec llavaRecord
	if len(j.Image) > 0 && string(j.Image) != "null" {
		var one string
		if err := json.Unmarshal(j.Image, &one); err == nil {
			rec.images = []string{one}
		} else if err := json.Unmarshal(j.Image, &rec.images); err != nil {
			return rec, fmt.Errorf(`"image" must be a file name or a list of names`)
		}
		for i, im := range rec.images {
			if strings.TrimSpace(im) == "" {
				return rec, fmt.Errorf("image %d has an empty file name", i)
			}
		}
	}
	if len(j.Conversations) == 0 {
		return rec, fmt.Errorf(`no "conversations"`)
	}
	placeholders, answers, firstUser := 0, 0, -1
	for i, t := range j.Conversations {
		if t.Value == nil {
			return rec, fmt.Errorf(`conversation turn %d has no "value"`, i)
		}
		role := tokenizer.NormalizeRole(t.From)
		switch role {
		case "user":
			if firstUser < 0 {
				firstUser = len(rec.msgs)
			}
		case "assistant":
			answers++
		case "system":
			if i != 0 {
				return rec, fmt.Errorf("conversation turn %d: a system turn must come first", i)
			}
		default:
			return rec, fmt.Errorf("conversation turn %d: unknown speaker %q (want human or gpt)", i, t.From)
		}
		placeholders += strings.Count(*t.Value, tokenizer.ImageToken)
		rec.msgs = append(rec.msgs, tokenizer.Message{Role: role, Content: *t.Value})
	}
	if answers == 0 {
		return rec, fmt.Errorf("no gpt turn to learn from")
	}
	if firstUser < 0 {
		return rec, fmt.Errorf("no human turn")
	}
	switch {
	case placeholders == 0 && len(rec.images) > 0:
		rec.msgs[firstUser].Content = strings.Repeat(tokenizer.ImageToken+"\n", len(rec.images)) + rec.msgs[firstUser].Content
	case placeholders != len(rec.images):
		return rec, fmt.Errorf("%d %s placeholders for %d images", placeholders, tokenizer.ImageToken, len(rec.images))
	}
	return rec, nil
}

func (s *LLaVASource) Name() string { return s.name }
func (s *LLaVASource) Len() int     { return len(s.recs) }

// Sample decodes the record's images and tokenises its conversation.
func (s *LLaVASource) Sample(i int, _ *rand.Rand) (Sample, error) {
	if i < 0 || i >= len(s.recs) {
		return Sample{}, fmt.Errorf("data: %s: index %d out of range", s.name, i)
	}
	rec := s.recs[i]
	var imgs []vision.Image
	for _, name := range rec.images {
		p, err := resolve(s.folder, name)
		if err != nil {
			return Sample{}, recordErr(s.path, rec.index, "%v", err)
		}
		img, err := s.env.decode(p)
		if err != nil {
			return Sample{}, recordErr(s.path, rec.index, "image: %v", err)
		}
		imgs = append(imgs, img)
	}
	smp, err := s.env.ChatSample(rec.msgs, imgs)
	if err != nil {
		return Sample{}, recordErr(s.path, rec.index, "%v", err)
	}
	smp.Source, smp.Index = s.path, rec.index
	return smp, nil
}
