package eval

import (
	"sort"
	"strings"
)

// VQA accuracy, as the official evaluators compute it.
//
// Normalisation (VQANormalize) is the EvalAI answer processor that the VQA
// challenge server applies to submissions and that TextVQA's evaluator (and
// lmms-eval, which Magma's evaluation uses) applies to predictions: lower
// case; "," and "?" deleted and "'s" split off; newlines and tabs to
// spaces; then the punctuation rule; then number words to digits
// ("two" -> "2", "none" -> "0"), articles dropped, contractions restored
// ("dont" -> "don't").
//
// The punctuation rule (vqaPunctuation) goes through a fixed list of
// characters; each is deleted when it touches a space anywhere in the
// original text (or the text has a digit,digit group), otherwise replaced by
// a space. Then every "." not followed by a digit is deleted (at most 32 of
// them: the official code passes re.UNICODE where the count goes).
//
// Score of one question (VQAScore): with the n human answers g_1..g_n
// (normally 10) and the normalised prediction p,
//
//	acc = 1/n * sum_i min(1, #{j != i : g_j == p} / 3)
//
// i.e. min(1, matches/3) averaged over the n leave-one-out subsets of n-1
// answers. With m of 10 answers equal to p that is (m*min(1,(m-1)/3) +
// (10-m)*min(1,m/3))/10: 3 agreeing annotators give 0.9, 4 or more give 1.
//
// The two benchmarks differ only in how the human answers are normalised:
//   - VQAv2 (the official VQA evaluation, as lmms-eval runs it): the answers
//     are used as given (newline/tab to space, trimmed) when all n agree;
//     when they differ, answers and prediction get the punctuation rule and
//     the number/article/contraction step once more.
//   - TextVQA (its official evaluator): every answer gets the full
//     VQANormalize.

// VQAKind selects how human answers are normalised.
type VQAKind int

const (
	// VQAv2Scoring is the VQA challenge evaluator (VQAv2, also OK-VQA, VizWiz).
	VQAv2Scoring VQAKind = iota
	// TextVQAScoring is TextVQA's evaluator.
	TextVQAScoring
)

// vqaPunct is the official list, in its order (the order matters only for
// which characters are tested against the original text, which is all of
// them, so it does not change the result).
var vqaPunct = []string{";", "/", "[", "]", "\"", "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"}

var vqaNumbers = map[string]string{
	"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
	"five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}

var vqaArticles = map[string]bool{"a": true, "an": true, "the": true}

// vqaContractions maps the apostrophe-less spellings the official evaluator
// knows to the spelled-out contraction.
var vqaContractions = map[string]string{
	"aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
	"couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
	"dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
	"havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
	"howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
	"Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
	"let's": "let's", "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've",
	"mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
	"neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
	"ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
	"shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
	"shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
	"somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
	"somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
	"someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
	"someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
	"something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
	"thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
	"theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
	"theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
	"wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
	"whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
	"wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
	"who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
	"whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
	"wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
	"y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
	"youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
	"youve": "you've",
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// hasDigitCommaDigit reports a digit, one or more commas, a digit ("1,000").
func hasDigitCommaDigit(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if !isDigit(s[i]) || s[i+1] != ',' {
			continue
		}
		j := i + 1
		for j < len(s) && s[j] == ',' {
			j++
		}
		if j < len(s) && isDigit(s[j]) {
			return true
		}
	}
	return false
}

// vqaPunctuation is the official punctuation rule (see the package notes above).
func vqaPunctuation(in string) string {
	out := in
	comma := hasDigitCommaDigit(in)
	for _, p := range vqaPunct {
		if comma || strings.Contains(in, p+" ") || strings.Contains(in, " "+p) {
			out = strings.ReplaceAll(out, p, "")
		} else {
			out = strings.ReplaceAll(out, p, " ")
		}
	}
	// periods not followed by a digit, at most 32 of them
	var b strings.Builder
	n := 0
	for i := 0; i < len(out); i++ {
		if out[i] == '.' && n < 32 && (i+1 >= len(out) || !isDigit(out[i+1])) {
			n++
			continue
		}
		b.WriteByte(out[i])
	}
	return b.String()
}

// vqaDigitArticle lower-cases, maps number words to digits, drops articles
// and restores contractions, joining the words with single spaces.
func vqaDigitArticle(in string) string {
	words := strings.Fields(strings.ToLower(in))
	out := words[:0]
	for _, w := range words {
		if d, ok := vqaNumbers[w]; ok {
			w = d
		}
		if !vqaArticles[w] {
			out = append(out, w)
		}
	}
	for i, w := range out {
		if c, ok := vqaContractions[w]; ok {
			out[i] = c
		}
	}
	return strings.Join(out, " ")
}

func vqaClean(s string) string {
	return strings.TrimSpace(strings.NewReplacer("\n", " ", "\t", " ").Replace(s))
}

// VQANormalize is the EvalAI answer processor: "Two dogs." -> "2 dogs",
// "a dog" -> "dog", "yes." -> "yes", "dont know" -> "don't know".
func VQANormalize(s string) string {
	s = strings.ToLower(s)
	s = strings.NewReplacer(",", "", "?", "").Replace(s)
	s = strings.ReplaceAll(s, "'s", " 's")
	s = vqaClean(s)
	return vqaDigitArticle(vqaPunctuation(s))
}

// VQAScore is the accuracy of one prediction against the human answers
// (normally 10) in [0,1]; 0 without answers.
func VQAScore(pred string, answers []string, kind VQAKind) float64 {
	n := len(answers)
	if n == 0 {
		return 0
	}
	p := VQANormalize(pred)
	gts := make([]string, n)
	switch kind {
	case TextVQAScoring:
		for i, a := range answers {
			gts[i] = VQANormalize(a)
		}
	default:
		distinct := map[string]bool{}
		for i, a := range answers {
			gts[i] = vqaClean(a)
			distinct[gts[i]] = true
		}
		if len(distinct) > 1 {
			for i := range gts {
				gts[i] = vqaDigitArticle(vqaPunctuation(gts[i]))
			}
			p = vqaDigitArticle(vqaPunctuation(p))
		}
	}
	m := 0
	for _, g := range gts {
		if g == p {
			m++
		}
	}
	// leave-one-out: dropping a matching answer leaves m-1 matches, dropping
	// another leaves m.
	sum := float64(m)*min(1, float64(m-1)/3) + float64(n-m)*min(1, float64(m)/3)
	return sum / float64(n)
}

// VQATally accumulates per-question scores overall and per answer type.
type VQATally struct {
	Sum    float64
	N      int
	ByType map[string]*TypeTally
}

// TypeTally is a per-category running sum.
type TypeTally struct {
	Sum float64 `json:"sum"`
	N   int     `json:"n"`
}

// Mean is Sum/N (0 when empty).
func (t TypeTally) Mean() float64 {
	if t.N == 0 {
		return 0
	}
	return t.Sum / float64(t.N)
}

// Add records one question's score under its answer type ("yes/no",
// "number", "other"; "" is not broken down).
func (v *VQATally) Add(answerType string, score float64) {
	v.Sum += score
	v.N++
	if answerType == "" {
		return
	}
	if v.ByType == nil {
		v.ByType = map[string]*TypeTally{}
	}
	t := v.ByType[answerType]
	if t == nil {
		t = &TypeTally{}
		v.ByType[answerType] = t
	}
	t.Sum += score
	t.N++
}

// Overall is the mean score over all questions.
func (v *VQATally) Overall() float64 { return TypeTally{v.Sum, v.N}.Mean() }

// Types are the answer types in sorted order.
func (v *VQATally) Types() []string {
	ks := make([]string, 0, len(v.ByType))
	for k := range v.ByType {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
