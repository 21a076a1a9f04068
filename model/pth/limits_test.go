package pth

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

// TestPickleLimits: hostile pickles that would loop, recurse, blow up
// exponentially or allocate without bound are refused quickly with a reason.
func TestPickleLimits(t *testing.T) {
	st := map[string][]byte{"0": f32Bytes(1, 2)}
	u32 := func(op byte, v uint32) []byte { return binary.LittleEndian.AppendUint32([]byte{op}, v) }
	// a list that contains itself
	cyclic := newPickle().op(']', 'q', 0, 'h', 0, 'a', '.').b
	// T_k = (T_{k-1}, T_{k-1}), 40 levels: 2^40 paths to walk
	dag := newPickle().mark().op(']')
	for i := 0; i < 40; i++ {
		dag.op('q', 0, '0', 'h', 0, 'h', 0, 0x86)
	}
	dag.op('l', '.')
	// a dict key of tuples nested 100 deep
	deepKey := newPickle().op('}').int(1)
	for i := 0; i < 100; i++ {
		deepKey.op(0x85)
	}
	deepKey.int(2).op('s', '.')
	longName := newPickle().dict(func(p *pk) {
		p.str(strings.Repeat("n", 70000)).tensorV2("FloatStorage", "0", 2, 0, []int64{2}, []int64{1})
	}).stop()
	floatKey := newPickle().op('}').op('G', 0x3f, 0xf0, 0, 0, 0, 0, 0, 0).tensorV2("FloatStorage", "0", 2, 0, []int64{2}, []int64{1}).op('s', '.').b
	cases := []struct {
		name, want string
		pkl        []byte
	}{
		{"cyclic list", "nested more than", cyclic},
		{"exponential sharing", "values to walk", dag.b},
		{"deep tuple key", "nested more than 16", deepKey.b},
		{"unhashable key", "unhashable", newPickle().op('}', ']').int(1).op('s', '.').b},
		{"float key holding a tensor", "dict key of type float holds tensors", floatKey},
		{"tensor name 70000 bytes", "longer than 65536", longName},
		{"LONG4 of 1000 bytes", "LONG of 1000 bytes", append(newPickle().op(u32(0x8b, 1000)...).b, make([]byte, 1000)...)},
		{"LONG4 negative length", "LONG of -1 bytes", newPickle().op(u32(0x8b, 0xffffffff)...).b},
		{"string past the end", "runs past the end", newPickle().op(u32('X', 0x7fffffff)...).op('a', 'b').b},
		{"BINUNICODE8 huge", "runs past the end", append(newPickle().op(0x8d).b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
		{"memo index huge", "memo index", newPickle().op('N').op(u32('r', 0xffffffff)...).op('.').b},
		{"memo never stored", "never stored", newPickle().op('h', 9, '.').b},
		{"STACK_GLOBAL of ints", "STACK_GLOBAL of int and int", newPickle().int(1).int(2).op(0x93, '.').b},
		{"a million MARKs", "open MARKs", append(newPickle().b, bytes.Repeat([]byte{'('}, 1<<20+1)...)},
		{"invalid UTF-8", "UTF-8", newPickle().op('X', 2, 0, 0, 0, 0xff, 0xfe, '.').b},
		{"protocol 6", "protocol 6", []byte{0x80, 6, 'N', '.'}},
		{"STOP on empty stack", "underflow", newPickle().op('.').b},
		{"STOP inside a MARK", "open MARK", newPickle().op('(', 'N', '.').b},
		{"SETITEMS odd", "odd number", newPickle().op('}', '(', 'N', 'u', '.').b},
		{"APPEND to a dict", "APPEND(S) to a value of type dict", newPickle().op('}', 'N', 'a', '.').b},
		{"BUILD of an int", "BUILD of a value of type int", newPickle().int(1).op('}', 'b', '.').b},
		{"unknown opcode", "unknown opcode 0xff", newPickle().op(0xff).b},
		{"TUPLE without MARK", "no MARK", newPickle().op('t', '.').b},
	}
	start := time.Now()
	for _, c := range cases {
		_, err := openBytes(archive(t, c.pkl, st), "hostile.pth")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "pth hostile.pth: ") {
			t.Errorf("%s: error %v, want one naming the file and %q", c.name, err, c.want)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("hostile pickles took %v", d)
	}
}
