package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

type chatCase struct {
	ImageStartEnd bool      `json:"image_start_end"`
	Messages      []Message `json:"messages"`
	Rendered      string    `json:"rendered"`
	IDs           []int     `json:"ids"`
	AssistantIDs  []int     `json:"assistant_ids"`
}

// TestChatAgainstReference compares with testdata/chat.json, produced by the
// JS reference running the real chat template (scripts/tokenizer/gen_chat.mjs).
func TestChatAgainstReference(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "chat.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []chatCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	tok := realTokenizer(t, "magma")
	for _, c := range cases {
		o := ChatOptions{ImageStartEnd: c.ImageStartEnd, AddGenerationPrompt: true}
		got, err := RenderChat(c.Messages, o)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.Rendered {
			t.Errorf("startEnd=%v: rendered\n%q\nwant\n%q", c.ImageStartEnd, got, c.Rendered)
		}
		// The reference encodes the rendering as is (one BOS): SingleBOS.
		o.SingleBOS = true
		ids, err := tok.EncodeChat(c.Messages, o)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ids, c.IDs) {
			t.Errorf("startEnd=%v: ids\n%v\nwant\n%v", c.ImageStartEnd, ids, c.IDs)
		}
		// By default a second BOS goes in front, as Magma's processor and
		// training code produce (tokenizer(rendered) with special tokens).
		o.SingleBOS = false
		ids2, err := tok.EncodeChat(c.Messages, o)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ids2, append([]int{128000}, c.IDs...)) {
			t.Errorf("startEnd=%v: default ids %v, want 128000 then the reference", c.ImageStartEnd, ids2[:4])
		}
		// Training: same ids (double BOS) minus the trailing generation
		// prompt; only the assistant answer and its <|eot_id|> are supervised.
		o.AddGenerationPrompt = false
		tids, labels, err := tok.EncodeTraining(c.Messages, o)
		if err != nil {
			t.Fatal(err)
		}
		genPrompt := tok.Encode(StartHeader + "assistant" + EndHeader + "\n\n")
		wantIDs := append([]int{128000}, c.IDs[:len(c.IDs)-len(genPrompt)]...)
		if !reflect.DeepEqual(tids, wantIDs) {
			t.Fatalf("training ids\n%v\nwant\n%v", tids, wantIDs)
		}
		start := len(wantIDs) - len(c.AssistantIDs)
		for i, l := range labels {
			want := IgnoreIndex
			if i >= start {
				want = c.AssistantIDs[i-start]
			}
			if l != want {
				t.Errorf("label %d = %d, want %d", i, l, want)
			}
		}
	}
}

func TestChatRendering(t *testing.T) {
	msgs := []Message{{Role: "human", Content: "  hi <image> there\n"}, {Role: "gpt", Content: "\tyo  "}}
	got, err := RenderChat(msgs, ChatOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Images move first; trim then applies to the whole content, so the
	// spaces after "<image>\n" stay (as in Magma).
	want := "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" + DefaultSystemPrompt + "<|eot_id|>" +
		"<|start_header_id|>user<|end_header_id|>\n\n<image>\n  hi  there<|eot_id|>" +
		"<|start_header_id|>assistant<|end_header_id|>\n\nyo<|eot_id|>"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	got, _ = RenderChat([]Message{{Role: "user", Content: "<image_start><image><image_end>\nQ"}}, ChatOptions{ImageStartEnd: true, SystemPrompt: "S", AddGenerationPrompt: true})
	want = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n<image_start><image><image_end>\nQ<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	got, _ = RenderChat([]Message{{Role: "user", Content: "<image><image>two"}}, ChatOptions{NoSystemPrompt: true})
	if want := "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<image>\n<image>\ntwo<|eot_id|>"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
	if _, err := RenderChat([]Message{{Role: "user", Content: "a"}, {Role: "system", Content: "b"}}, ChatOptions{}); err == nil {
		t.Error("late system message accepted")
	}
	if _, err := RenderChat([]Message{{Role: "tool", Content: "a"}}, ChatOptions{}); err == nil || !strings.Contains(err.Error(), "unknown role") {
		t.Errorf("bad role: %v", err)
	}
	if _, err := RenderChat(nil, ChatOptions{}); err == nil {
		t.Error("empty conversation accepted")
	}
	if pyStrip("\x1c a \u3000\u0085") != "a" {
		t.Error("pyStrip")
	}
}

func TestTrainingRefusesMismatch(t *testing.T) {
	tok := realTokenizer(t, "llama3")
	// "hello" + "world" tokenize differently apart than together.
	_, _, err := tok.labelSegments([]chatSegment{{text: "hello"}, {text: "world", supervised: true}})
	if err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("mismatch not refused: %v", err)
	}
	if _, _, err := tok.EncodeTraining([]Message{{Role: "user", Content: "x"}}, ChatOptions{}); err == nil {
		t.Error("conversation without assistant accepted for training")
	}
	if _, _, err := tok.EncodeTraining([]Message{{Role: "user", Content: "x"}, {Role: "assistant", Content: "y"}}, ChatOptions{AddGenerationPrompt: true}); err == nil {
		t.Error("generation prompt accepted for training")
	}
	// Multi-turn: each assistant answer is supervised, nothing else.
	ids, labels, err := tok.EncodeTraining([]Message{
		{Role: "user", Content: "Q1"}, {Role: "assistant", Content: "A1"},
		{Role: "user", Content: "Q2"}, {Role: "assistant", Content: "A2 [12,34]"},
	}, ChatOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var sup []int
	for i, l := range labels {
		if l != IgnoreIndex {
			if l != ids[i] {
				t.Fatalf("label %d = %d but id %d", i, l, ids[i])
			}
			sup = append(sup, l)
		}
	}
	want := append(append(tok.Encode("A1"), 128009), append(tok.Encode("A2 [12,34]"), 128009)...)
	if !reflect.DeepEqual(sup, want) {
		t.Errorf("supervised %v want %v", sup, want)
	}
}

// Answers given as ids (robot actions) are spliced in supervised, with
// their <|eot_id|>, between text turns.
func TestTrainingWithIDs(t *testing.T) {
	tok := realTokenizer(t, "magma")
	msgs := []Message{
		{Role: "user", Content: "<image>\nWhat action should the robot take to lift it?"},
		{Role: "assistant", IDs: []int{127800, 127900, 127999}},
		{Role: "user", Content: "<image>\nwhere next?"},
		{Role: "assistant", Content: "there"},
	}
	ids, labels, err := tok.EncodeTraining(msgs, ChatOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ids[0] != 128000 || ids[1] != 128000 || labels[0] != IgnoreIndex {
		t.Errorf("start %v", ids[:3])
	}
	var sup []int
	for i, l := range labels {
		if l != IgnoreIndex {
			if l != ids[i] {
				t.Fatal("label differs from id")
			}
			sup = append(sup, l)
		}
	}
	there := tok.Encode("there")
	want := append(append([]int{127800, 127900, 127999, 128009}, there...), 128009)
	if !reflect.DeepEqual(sup, want) {
		t.Errorf("supervised %v, want %v", sup, want)
	}
	if _, err := RenderChat(msgs, ChatOptions{}); err == nil {
		t.Error("rendered a message given as ids")
	}
}
