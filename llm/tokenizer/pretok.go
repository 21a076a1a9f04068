package tokenizer

import (
	"unicode"
	"unicode/utf8"

	sugar "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/normalizer"
	"github.com/sugarme/tokenizer/pretokenizer"
)

// Llama3Pattern is the Split regex of Llama-3's tokenizer.json. Go's regexp
// cannot compile it ((?!\S) is a look-ahead), which is why sugarme's
// pretrained loader panics on the file; splitLlama3 implements it by hand.
const Llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// asciiClass caches the character classes of ASCII bytes: the hot path of
// the splitter never calls into package unicode for them.
const (
	clsOther  = 0
	clsLetter = 1
	clsNumber = 2
	clsSpace  = 3
)

var asciiClass = func() (t [128]uint8) {
	for b := 0; b < 128; b++ {
		r := rune(b)
		switch {
		case unicode.IsLetter(r):
			t[b] = clsLetter
		case unicode.IsNumber(r):
			t[b] = clsNumber
		case unicode.IsSpace(r):
			t[b] = clsSpace
		}
	}
	return t
}()

// class returns the rune at s[i:], its width and its class. \s is Unicode
// White_Space (Go's unicode.IsSpace is exactly that set, as in Rust's and
// Oniguruma's \s); \p{L} and \p{N} are the general categories.
func class(s string, i int) (rune, int, uint8) {
	c := s[i]
	if c < utf8.RuneSelf {
		return rune(c), 1, asciiClass[c]
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	switch {
	case unicode.IsLetter(r):
		return r, w, clsLetter
	case unicode.IsNumber(r):
		return r, w, clsNumber
	case unicode.IsSpace(r):
		return r, w, clsSpace
	}
	return r, w, clsOther
}

// contraction returns the length of a (?i:'s|'t|'re|'ve|'m|'ll|'d) match at
// the start of s (which begins with the apostrophe), or 0. Case-insensitive
// matching follows Unicode simple case folding as the Rust/Oniguruma engines
// do, so 's' also matches U+017F (long s); the ASCII letters here have no
// other folds.
func contraction(s string) int {
	if len(s) < 2 || s[0] != '\'' {
		return 0
	}
	// b|0x20 lower-cases ASCII letters; the cases below list letters only,
	// so the non-letters it also maps never match.
	lower := func(b byte) byte { return b | 0x20 }
	switch lower(s[1]) {
	case 't', 'm', 'd':
		return 2
	case 's':
		return 2
	case 'r':
		if len(s) >= 3 && lower(s[2]) == 'e' {
			return 3
		}
	case 'v':
		if len(s) >= 3 && lower(s[2]) == 'e' {
			return 3
		}
	case 'l':
		if len(s) >= 3 && lower(s[2]) == 'l' {
			return 3
		}
	}
	// U+017F LATIN SMALL LETTER LONG S folds to 's'.
	if len(s) >= 3 && s[1] == 0xC5 && s[2] == 0xBF {
		return 3
	}
	return 0
}

// splitLlama3 calls emit(start, end) for every piece of s in order, exactly
// as the Llama-3 Split pattern with "Isolated" behaviour would produce them:
// at each position the alternatives are tried left to right, each greedy,
// with the backtracking a regex engine would do. s must be valid UTF-8.
func splitLlama3(s string, emit func(start, end int)) {
	splitLlama3Until(s, func(a, b int) bool { emit(a, b); return true })
}

// splitLlama3Until is splitLlama3 that stops as soon as emit returns false
// (bounded tokenization: nothing past a limit is scanned).
func splitLlama3Until(s string, emit func(start, end int) bool) {
	n := len(s)
	i := 0
	for i < n {
		r, w, c := class(s, i)

		// 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
		if r == '\'' {
			if l := contraction(s[i:]); l > 0 {
				if !emit(i, i+l) {
					return
				}
				i += l
				continue
			}
		}

		// 2. [^\r\n\p{L}\p{N}]?\p{L}+
		if c == clsLetter {
			j := scanClass(s, i+w, clsLetter)
			if !emit(i, j) {
				return
			}
			i = j
			continue
		}
		if c != clsNumber && r != '\r' && r != '\n' && i+w < n {
			if _, w2, c2 := class(s, i+w); c2 == clsLetter {
				j := scanClass(s, i+w+w2, clsLetter)
				if !emit(i, j) {
					return
				}
				i = j
				continue
			}
		}

		// 3. \p{N}{1,3}
		if c == clsNumber {
			j := i + w
			for k := 0; k < 2 && j < n; k++ {
				_, w2, c2 := class(s, j)
				if c2 != clsNumber {
					break
				}
				j += w2
			}
			if !emit(i, j) {
				return
			}
			i = j
			continue
		}

		// 4. ` ?[^\s\p{L}\p{N}]+[\r\n]*`
		p := -1
		if c == clsOther {
			p = i
		} else if r == ' ' && i+1 < n {
			if _, _, c2 := class(s, i+1); c2 == clsOther {
				p = i + 1
			}
		}
		if p >= 0 {
			j := scanClass(s, p, clsOther)
			for j < n && (s[j] == '\r' || s[j] == '\n') {
				j++
			}
			if !emit(i, j) {
				return
			}
			i = j
			continue
		}

		// Only whitespace is left here (c == clsSpace). Let [i, j) be the
		// maximal whitespace run and last its final character's start.
		j, last, lastNL := i, i, -1
		for j < n {
			_, w2, c2 := class(s, j)
			if c2 != clsSpace {
				break
			}
			if s[j] == '\r' || s[j] == '\n' {
				lastNL = j
			}
			last = j
			j += w2
		}

		// 5. \s*[\r\n]+ : greedy \s* backs off to the last newline.
		if lastNL >= 0 {
			if !emit(i, lastNL+1) {
				return
			}
			i = lastNL + 1
			continue
		}
		// 6. \s+(?!\S): the whole run at end of input, else all but its
		// last character (which then precedes the non-space).
		if j == n {
			if !emit(i, j) {
				return
			}
			i = j
			continue
		}
		if last > i {
			if !emit(i, last) {
				return
			}
			i = last
			continue
		}
		// 7. \s+ : a single whitespace character before a non-space.
		if !emit(i, j) {
			return
		}
		i = j
	}
}

// scanClass returns the end of the run of characters of class cls from i.
func scanClass(s string, i int, cls uint8) int {
	for i < len(s) {
		_, w, c := class(s, i)
		if c != cls {
			break
		}
		i += w
	}
	return i
}

// Llama3Splitter implements sugarme's normalizer.Pattern with the hand-written
// Llama-3 split, so it can be used wherever the library expects a pattern
// (NormalizedString.Split).
type Llama3Splitter struct{}

var _ normalizer.Pattern = Llama3Splitter{}

// FindMatches returns every piece as a match; the pieces cover the input.
func (Llama3Splitter) FindMatches(inside string) []normalizer.OffsetsMatch {
	if inside == "" {
		return []normalizer.OffsetsMatch{{Offsets: []int{0, 0}, Match: false}}
	}
	var out []normalizer.OffsetsMatch
	splitLlama3(inside, func(a, b int) {
		out = append(out, normalizer.OffsetsMatch{Offsets: []int{a, b}, Match: true})
	})
	return out
}

// Llama3PreTokenizer is Llama-3's pre-tokenizer (Split with the pattern
// above, behaviour Isolated, then ByteLevel without prefix space or regex),
// implemented against sugarme's PreTokenizer interface so that the library's
// own pipeline (sugarme Tokenizer.Encode) can run it.
type Llama3PreTokenizer struct{}

var _ sugar.PreTokenizer = Llama3PreTokenizer{}

// PreTokenize splits every unsplit part and maps its bytes to the byte-level
// alphabet (sugarme's pretokenizer.BytesChar table), keeping the library's
// offset alignments.
func (Llama3PreTokenizer) PreTokenize(pts *sugar.PreTokenizedString) (*sugar.PreTokenizedString, error) {
	pts.Split(func(_ int, ns *normalizer.NormalizedString) []sugar.SplitIdx {
		parts := ns.Split(Llama3Splitter{}, normalizer.IsolatedBehavior)
		out := make([]sugar.SplitIdx, 0, len(parts))
		for k := range parts {
			p := parts[k]
			out = append(out, sugar.SplitIdx{Normalized: &p})
		}
		return out
	})
	pts.Normalize(func(ns *normalizer.NormalizedString) *normalizer.NormalizedString {
		s := ns.GetNormalized()
		changes := make([]normalizer.ChangeMap, 0, len(s))
		for _, r := range s {
			var buf [utf8.UTFMax]byte
			k := utf8.EncodeRune(buf[:], r)
			for b := 0; b < k; b++ {
				ch := 0
				if b > 0 {
					ch = 1
				}
				changes = append(changes, normalizer.ChangeMap{RuneVal: pretokenizer.BytesChar[buf[b]], Changes: ch})
			}
		}
		return ns.Transform(changes, 0)
	})
	return pts, nil
}
