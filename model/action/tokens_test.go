package action

import (
	"math"
	"testing"
)

// Expected ids computed with Python's float64 arithmetic replicating
// numpy.linspace and numpy.digitize (bisect_right).
func TestActionToken(t *testing.T) {
	at, err := NewTokenizer(LlamaBaseVocab)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		x  float64
		id int
	}{
		{-1.0, 127999}, {1.0, 127744}, {0.0, 127872}, {-2.0, 127999}, {2.0, 127744},
		{-0.9921568627450981, 127998}, {-0.9921568627450982, 127999}, // bins[1] and just below
		{0.5, 127808}, {-0.5, 127936},
		{0.0039215686274509665, 127871}, {0.003921568627450966, 127872}, // bins[128] and just below
		{0.9921568627450981, 127745}, {0.9999999999999999, 127745},
		{-0.99, 127998}, {0.99, 127746}, {1e-12, 127872}, {-1e-12, 127872},
		{math.Inf(1), 127744}, {math.Inf(-1), 127999},
	}
	for _, c := range cases {
		got, err := at.Token(c.x)
		if err != nil || got != c.id {
			t.Errorf("Token(%v) = %d, %v; want %d", c.x, got, err, c.id)
		}
	}
	if _, err := at.Token(math.NaN()); err == nil {
		t.Error("NaN accepted")
	}
	if at.MinID() != 127744 || at.MaxID() != 127999 {
		t.Errorf("range %d..%d", at.MinID(), at.MaxID())
	}
}

func TestActionValue(t *testing.T) {
	at, _ := NewTokenizer(LlamaBaseVocab)
	cases := []struct {
		id int
		v  float64
	}{
		{127999, -0.996078431372549}, {127744, 0.996078431372549}, {127745, 0.996078431372549},
		{127872, 0.0}, {127873, -0.007843137254901933},
		{128000, -0.996078431372549}, {5, 0.996078431372549}, // outside: clipped like OpenVLA
	}
	for _, c := range cases {
		if got := at.Value(c.id); got != c.v {
			t.Errorf("Value(%d) = %v, want %v", c.id, got, c.v)
		}
	}
	if _, err := at.Decode([]int{127800, 128000}); err == nil {
		t.Error("Decode accepted a non-action id")
	}
	// Round trip: the centre of a bin tokenizes back to the same id
	// (except the top bin, whose centre belongs to bin 255).
	for id := at.MinID() + 1; id <= at.MaxID(); id++ {
		back, _ := at.Token(at.Value(id))
		if back != id {
			t.Errorf("Token(Value(%d)) = %d", id, back)
		}
	}
	ids, err := at.Encode([]float64{-1, 0, 1, 0.25})
	if err != nil {
		t.Fatal(err)
	}
	vals, err := at.Decode(ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{-1, 0, 1, 0.25} {
		if math.Abs(vals[i]-want) > 1.0/127 {
			t.Errorf("dim %d: %v -> %v", i, want, vals[i])
		}
	}
	if _, err := NewTokenizer(100); err == nil {
		t.Error("tiny vocabulary accepted")
	}
}

func TestNormalizeQ99(t *testing.T) {
	for _, c := range []struct{ a, q01, q99, want float64 }{
		{0, -1, 1, 0}, {1, -1, 1, 1}, {5, -1, 1, 1}, {-5, -1, 1, -1}, {0.5, 0, 1, 0},
	} {
		got := NormalizeQ99(c.a, c.q01, c.q99)
		if math.Abs(got-c.want) > 1e-7 {
			t.Errorf("NormalizeQ99(%v) = %v want %v", c.a, got, c.want)
		}
		if c.a >= c.q01 && c.a <= c.q99 {
			if back := UnnormalizeQ99(got, c.q01, c.q99); math.Abs(back-c.a) > 1e-7 {
				t.Errorf("Unnormalize(%v) = %v want %v", got, back, c.a)
			}
		}
	}
}
