package eval

import (
	"strings"
)

// Multiple-choice video QA (NextQA, VideoMME) is scored as VideoMME's
// official evaluation does: the known answer prefixes ("The best answer
// is", "The correct answer is", "The answer is", "The answer", "The best
// option is", "The correct option is", "Best answer:", "Best option:") are
// removed; the choice is then the first option letter (upper case) anywhere
// in the text, and an answer without one is unanswered (wrong). (The
// official rule "more than 10 words and no letter: unanswered" is implied.) NextQA has five options (A-E), VideoMME four (A-D).
// Accuracy is correct/total, reported overall and per category (VideoMME:
// duration short/medium/long; NextQA: question type).

var mcPrefixes = []string{"The best answer is", "The correct answer is", "The answer is", "The answer",
	"The best option is", "The correct option is", "Best answer:", "Best option:"}

// ExtractChoice returns the option letter chosen in text among the first
// nOptions letters (A, B, ...), or "" when none can be read.
func ExtractChoice(text string, nOptions int) string {
	s := strings.TrimSpace(text)
	for _, p := range mcPrefixes {
		s = strings.ReplaceAll(s, p, "")
	}
	first := -1
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && int(s[i]-'A') < nOptions {
			first = i
			break
		}
	}
	if first < 0 {
		return ""
	}
	return s[first : first+1]
}

// ChoiceLetter is the letter of option i (0 -> "A").
func ChoiceLetter(i int) string { return string(rune('A' + i)) }

// MCTally counts multiple-choice answers overall and per category.
type MCTally struct {
	Correct, Total, Unanswered int
	ByCat                      map[string]*MCCount
}

// MCCount is one category's counts.
type MCCount struct {
	Correct    int `json:"correct"`
	Total      int `json:"total"`
	Unanswered int `json:"unanswered"`
}

// Accuracy is Correct/Total.
func (c MCCount) Accuracy() float64 { return ratio(c.Correct, c.Total) }

// Add records a choice ("" = unanswered, wrong) against the answer letter.
func (t *MCTally) Add(category, choice, answer string) bool {
	ok := choice != "" && choice == answer
	add := func(c *MCCount) {
		c.Total++
		if ok {
			c.Correct++
		}
		if choice == "" {
			c.Unanswered++
		}
	}
	all := MCCount{t.Correct, t.Total, t.Unanswered}
	add(&all)
	t.Correct, t.Total, t.Unanswered = all.Correct, all.Total, all.Unanswered
	if category != "" {
		if t.ByCat == nil {
			t.ByCat = map[string]*MCCount{}
		}
		c := t.ByCat[category]
		if c == nil {
			c = &MCCount{}
			t.ByCat[category] = c
		}
		add(c)
	}
	return ok
}

// Accuracy is the overall accuracy.
func (t *MCTally) Accuracy() float64 { return ratio(t.Correct, t.Total) }
