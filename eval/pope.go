package eval

import (
	"strings"
)

// POPE scoring follows the evaluation script POPE numbers are usually
// reported with (LLaVA's, used by Magma): the answer is cut at its first
// "." (only the first sentence counts), commas are removed, it is split on
// single spaces, and it is "no" when one of the words is exactly "No",
// "no" or "not", otherwise "yes" (so "Yes." is yes, "There is no dog." is
// no, and an empty answer is yes; the loop also reports empty answers as
// bad input). The label is "no" or anything else = yes. Positive = yes.

// POPEAnswer extracts yes/no from a free-text answer.
func POPEAnswer(text string) string {
	if i := strings.IndexByte(text, '.'); i >= 0 {
		text = text[:i]
	}
	text = strings.ReplaceAll(text, ",", "")
	for _, w := range strings.Split(text, " ") {
		if w == "No" || w == "no" || w == "not" {
			return "no"
		}
	}
	return "yes"
}

// POPECounts is the confusion matrix of one split, positive = "yes".
type POPECounts struct {
	TP int `json:"tp"`
	FP int `json:"fp"`
	TN int `json:"tn"`
	FN int `json:"fn"`
}

// Add records one answer against its label ("yes"/"no").
func (c *POPECounts) Add(pred, label string) {
	py, ly := pred == "yes", !strings.EqualFold(strings.TrimSpace(label), "no")
	switch {
	case py && ly:
		c.TP++
	case py && !ly:
		c.FP++
	case !py && !ly:
		c.TN++
	default:
		c.FN++
	}
}

// POPEMetrics are the numbers POPE reports, each in [0,1]. A ratio whose
// denominator is 0 is reported as 0 (the reference script would divide by
// zero).
type POPEMetrics struct {
	N         int     `json:"n"`
	Accuracy  float64 `json:"accuracy"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	YesRatio  float64 `json:"yes_ratio"`
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Metrics computes accuracy, precision, recall, F1 and the yes-ratio.
func (c POPECounts) Metrics() POPEMetrics {
	n := c.TP + c.FP + c.TN + c.FN
	m := POPEMetrics{N: n, Accuracy: ratio(c.TP+c.TN, n), Precision: ratio(c.TP, c.TP+c.FP),
		Recall: ratio(c.TP, c.TP+c.FN), YesRatio: ratio(c.TP+c.FP, n)}
	if m.Precision+m.Recall > 0 {
		m.F1 = 2 * m.Precision * m.Recall / (m.Precision + m.Recall)
	}
	return m
}
