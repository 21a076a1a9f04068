package pth

// A small pickle virtual machine: the opcodes of protocols 0–5 that
// torch.save state dicts use, over values of the types below. Globals are
// resolved against the allow-list (allow.go) the moment they are named; a
// global not on it stops the load with its module.name and is never called.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of the VM: a data.pkl beyond them is refused, not worked through.
const (
	maxStack    = 1 << 20 // values on the stack (all marks together)
	maxMemo     = 1 << 22 // memo entries, and the largest memo index
	maxOps      = 1 << 26 // opcodes executed
	maxItems    = 1 << 24 // values created (containers' items included)
	maxLongSize = 64      // bytes of a LONG1/LONG4 integer
	maxTextLine = 1 << 16 // a protocol-0 text argument (GLOBAL, INT, ...)
)

// Values of the VM. Python's None is pyNone, ints are int64 (or *big.Int
// past 64 bits), floats float64, str string, bytes []byte.
type (
	pyNone  struct{}
	pyTuple []any
	pyList  struct{ items []any }
	// pyDict is a dict or an OrderedDict: insertion order is kept, a key
	// set again keeps its first position (as in Python).
	pyDict struct {
		keys  []any
		vals  []any
		index map[string]int
		attrs *pyDict // BUILD state (an OrderedDict's _metadata)
	}
	// pyGlobal is a name from the allow-list (a callable, a type or a dtype).
	pyGlobal struct{ module, name string }
	// pyMark is the MARK sentinel on the stack.
	pyMark struct{}
)

func (d *pyDict) set(k, v any) error {
	h, err := hashKey(k)
	if err != nil {
		return err
	}
	if d.index == nil {
		d.index = map[string]int{}
	}
	if i, ok := d.index[h]; ok {
		d.vals[i] = v
		return nil
	}
	d.index[h] = len(d.keys)
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
	return nil
}

// hashKey is a dict key's identity; only Python's hashable scalars (and
// tuples of them) may be keys.
func hashKey(k any) (string, error) {
	switch v := k.(type) {
	case string:
		return "s" + v, nil
	case int64:
		return "i" + strconv.FormatInt(v, 10), nil
	case *big.Int:
		return "i" + v.String(), nil
	case bool:
		if v {
			return "i1", nil
		}
		return "i0", nil
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<63 {
			return "i" + strconv.FormatInt(int64(v), 10), nil
		}
		return "f" + strconv.FormatFloat(v, 'g', -1, 64), nil
	case pyNone:
		return "n", nil
	case []byte:
		return "b" + string(v), nil
	case pyTuple:
		var b strings.Builder
		b.WriteString("t(")
		for _, e := range v {
			h, err := hashKey(e)
			if err != nil {
				return "", err
			}
			b.WriteString(strconv.Itoa(len(h)))
			b.WriteByte(':')
			b.WriteString(h)
		}
		b.WriteByte(')')
		return b.String(), nil
	case *pyGlobal:
		return "g" + v.module + "." + v.name, nil
	}
	return "", fmt.Errorf("unhashable dict key of type %s", typeName(k))
}

// typeName is the Python-ish name of a VM value's type, for errors.
func typeName(v any) string {
	switch v.(type) {
	case pyNone:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case pyTuple:
		return "tuple"
	case *pyList:
		return "list"
	case *pyDict:
		return "dict"
	case *pyGlobal:
		return "global"
	case *storage:
		return "storage"
	case *tensorRef:
		return "tensor"
	case pyMark:
		return "mark"
	}
	return fmt.Sprintf("%T", v)
}

// unpickler runs one data.pkl.
type unpickler struct {
	data  []byte
	pos   int
	stack []any
	marks []int // stack heights at each MARK
	memo  map[int]any
	ops   int
	items int
	proto int
	// persistentLoad resolves a BINPERSID/PERSID id (a storage).
	persistentLoad func(id any) (any, error)
}

// errAt wraps an error with the opcode offset it happened at.
type pickleError struct {
	off int
	err error
}

func (e *pickleError) Error() string { return fmt.Sprintf("data.pkl offset %d: %v", e.off, e.err) }
func (e *pickleError) Unwrap() error { return e.err }

var errTruncated = errors.New("unexpected end of pickle data")

func (u *unpickler) need(n int) ([]byte, error) {
	if n < 0 || n > len(u.data)-u.pos {
		return nil, errTruncated
	}
	b := u.data[u.pos : u.pos+n]
	u.pos += n
	return b, nil
}

func (u *unpickler) line() (string, error) {
	rest := u.data[u.pos:]
	for i, c := range rest {
		if c == '\n' {
			u.pos += i + 1
			return string(rest[:i]), nil
		}
		if i >= maxTextLine {
			return "", fmt.Errorf("text argument longer than %d bytes", maxTextLine)
		}
	}
	return "", errTruncated
}

func (u *unpickler) push(v any) error {
	if len(u.stack) >= maxStack {
		return fmt.Errorf("stack deeper than %d values", maxStack)
	}
	u.items++
	if u.items > maxItems {
		return fmt.Errorf("more than %d values", maxItems)
	}
	u.stack = append(u.stack, v)
	return nil
}

func (u *unpickler) pop() (any, error) {
	base := 0
	if n := len(u.marks); n > 0 {
		base = u.marks[n-1]
	}
	if len(u.stack) <= base {
		return nil, errors.New("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	base := 0
	if n := len(u.marks); n > 0 {
		base = u.marks[n-1]
	}
	if len(u.stack) <= base {
		return nil, errors.New("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark pops the values pushed since the last MARK, and the mark.
func (u *unpickler) popMark() ([]any, error) {
	n := len(u.marks)
	if n == 0 {
		return nil, errors.New("no MARK on the stack")
	}
	m := u.marks[n-1]
	u.marks = u.marks[:n-1]
	vals := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return vals, nil
}

func (u *unpickler) memoPut(i int, v any) error {
	if i < 0 || i >= maxMemo {
		return fmt.Errorf("memo index %d out of range [0, %d)", i, maxMemo)
	}
	if _, ok := u.memo[i]; !ok && len(u.memo) >= maxMemo {
		return fmt.Errorf("more than %d memo entries", maxMemo)
	}
	u.memo[i] = v
	return nil
}

func (u *unpickler) memoGet(i int) error {
	v, ok := u.memo[i]
	if !ok {
		return fmt.Errorf("memo index %d was never stored", i)
	}
	return u.push(v)
}

// run executes the pickle and returns the value STOP leaves.
func (u *unpickler) run() (any, error) {
	u.memo = map[int]any{}
	for {
		off := u.pos
		v, done, err := u.step()
		if err != nil {
			var pe *pickleError
			if errors.As(err, &pe) {
				return nil, err
			}
			return nil, &pickleError{off: off, err: err}
		}
		if done {
			return v, nil
		}
	}
}

func (u *unpickler) step() (any, bool, error) {
	u.ops++
	if u.ops > maxOps {
		return nil, false, fmt.Errorf("more than %d opcodes", maxOps)
	}
	b, err := u.need(1)
	if err != nil {
		return nil, false, err
	}
	op := b[0]
	switch op {
	case 0x80: // PROTO
		b, err := u.need(1)
		if err != nil {
			return nil, false, err
		}
		if b[0] > 5 {
			return nil, false, fmt.Errorf("unsupported pickle protocol %d", b[0])
		}
		u.proto = int(b[0])
	case 0x95: // FRAME: a hint only, the data is already in memory
		if _, err := u.need(8); err != nil {
			return nil, false, err
		}
	case '.': // STOP
		v, err := u.pop()
		if err != nil {
			return nil, false, err
		}
		if len(u.marks) != 0 {
			return nil, false, errors.New("STOP with an open MARK")
		}
		return v, true, nil
	case '(': // MARK
		if len(u.marks) >= maxStack {
			return nil, false, fmt.Errorf("more than %d open MARKs", maxStack)
		}
		u.marks = append(u.marks, len(u.stack))
	case '0': // POP
		if len(u.stack) > 0 && (len(u.marks) == 0 || u.marks[len(u.marks)-1] < len(u.stack)) {
			_, err = u.pop()
		} else if len(u.marks) > 0 && u.marks[len(u.marks)-1] == len(u.stack) {
			// POP of a MARK (as Python's unpickler does)
			u.marks = u.marks[:len(u.marks)-1]
		} else {
			err = errors.New("stack underflow")
		}
	case '1': // POP_MARK
		_, err = u.popMark()
	case '2': // DUP
		var v any
		if v, err = u.top(); err == nil {
			err = u.push(v)
		}

	// Constants and numbers.
	case 'N':
		err = u.push(pyNone{})
	case 0x88: // NEWTRUE
		err = u.push(true)
	case 0x89: // NEWFALSE
		err = u.push(false)
	case 'J': // BININT
		var b []byte
		if b, err = u.need(4); err == nil {
			err = u.push(int64(int32(binary.LittleEndian.Uint32(b))))
		}
	case 'K': // BININT1
		var b []byte
		if b, err = u.need(1); err == nil {
			err = u.push(int64(b[0]))
		}
	case 'M': // BININT2
		var b []byte
		if b, err = u.need(2); err == nil {
			err = u.push(int64(binary.LittleEndian.Uint16(b)))
		}
	case 0x8a, 0x8b: // LONG1, LONG4
		var n int
		if op == 0x8a {
			var b []byte
			if b, err = u.need(1); err == nil {
				n = int(b[0])
			}
		} else {
			var b []byte
			if b, err = u.need(4); err == nil {
				n = int(int32(binary.LittleEndian.Uint32(b)))
			}
		}
		if err == nil {
			if n < 0 || n > maxLongSize {
				err = fmt.Errorf("LONG of %d bytes (at most %d)", n, maxLongSize)
			} else {
				var b []byte
				if b, err = u.need(n); err == nil {
					err = u.push(decodeLong(b))
				}
			}
		}
	case 'I': // INT (text; "00"/"01" are False/True)
		var s string
		if s, err = u.line(); err == nil {
			switch s {
			case "00":
				err = u.push(false)
			case "01":
				err = u.push(true)
			default:
				var i int64
				if i, err = strconv.ParseInt(s, 10, 64); err == nil {
					err = u.push(i)
				} else {
					err = fmt.Errorf("INT %q: not an integer", s)
				}
			}
		}
	case 'L': // LONG (text)
		var s string
		if s, err = u.line(); err == nil {
			s = strings.TrimSuffix(s, "L")
			if i, perr := strconv.ParseInt(s, 10, 64); perr == nil {
				err = u.push(i)
			} else if bi, ok := new(big.Int).SetString(s, 10); ok && len(s) <= 2*maxLongSize {
				err = u.push(bi)
			} else {
				err = fmt.Errorf("LONG %q: not an integer", s)
			}
		}
	case 'G': // BINFLOAT (big-endian)
		var b []byte
		if b, err = u.need(8); err == nil {
			err = u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
		}
	case 'F': // FLOAT (text)
		var s string
		if s, err = u.line(); err == nil {
			var f float64
			if f, err = strconv.ParseFloat(s, 64); err == nil {
				err = u.push(f)
			} else {
				err = fmt.Errorf("FLOAT %q: not a number", s)
			}
		}

	// Strings and bytes.
	case 'X', 0x8c, 0x8d: // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
		var b []byte
		if b, err = u.sized(op); err == nil {
			if !utf8.Valid(b) {
				err = errors.New("string is not valid UTF-8")
			} else {
				err = u.push(string(b))
			}
		}
	case 'T', 'U': // BINSTRING, SHORT_BINSTRING (Python 2 str: bytes read as Latin-1)
		var b []byte
		if b, err = u.sized(op); err == nil {
			err = u.push(latin1(b))
		}
	case 'B', 'C', 0x8e: // BINBYTES, SHORT_BINBYTES, BINBYTES8
		var b []byte
		if b, err = u.sized(op); err == nil {
			err = u.push(append([]byte(nil), b...))
		}
	case 'V': // UNICODE (raw-unicode-escape text); only plain ASCII accepted
		var s string
		if s, err = u.line(); err == nil {
			if strings.ContainsRune(s, '\\') {
				err = errors.New("UNICODE with escapes is not supported")
			} else {
				err = u.push(s)
			}
		}
	case 'S': // STRING (quoted text)
		var s string
		if s, err = u.line(); err == nil {
			var q string
			if q, err = strconv.Unquote(s); err == nil {
				err = u.push(q)
			} else if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' && !strings.ContainsRune(s[1:len(s)-1], '\\') {
				err = u.push(s[1 : len(s)-1])
			} else {
				err = fmt.Errorf("STRING %q: cannot decode", s)
			}
		}

	// Containers.
	case ')': // EMPTY_TUPLE
		err = u.push(pyTuple{})
	case 't': // TUPLE
		var vals []any
		if vals, err = u.popMark(); err == nil {
			err = u.push(pyTuple(vals))
		}
	case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
		n := int(op-0x85) + 1
		t := make(pyTuple, n)
		for i := n - 1; i >= 0 && err == nil; i-- {
			t[i], err = u.pop()
		}
		if err == nil {
			err = u.push(t)
		}
	case ']': // EMPTY_LIST
		err = u.push(&pyList{})
	case 'l': // LIST
		var vals []any
		if vals, err = u.popMark(); err == nil {
			err = u.push(&pyList{items: vals})
		}
	case '}': // EMPTY_DICT
		err = u.push(&pyDict{})
	case 'd': // DICT
		var vals []any
		if vals, err = u.popMark(); err == nil {
			d := &pyDict{}
			if err = setItems(d, vals); err == nil {
				err = u.push(d)
			}
		}
	case 'a': // APPEND
		var v, l any
		if v, err = u.pop(); err == nil {
			if l, err = u.top(); err == nil {
				err = appendItems(l, []any{v})
			}
		}
	case 'e': // APPENDS
		var vals []any
		if vals, err = u.popMark(); err == nil {
			var l any
			if l, err = u.top(); err == nil {
				err = appendItems(l, vals)
			}
		}
	case 's': // SETITEM
		var k, v, d any
		if v, err = u.pop(); err == nil {
			if k, err = u.pop(); err == nil {
				if d, err = u.top(); err == nil {
					err = setItemsOn(d, []any{k, v})
				}
			}
		}
	case 'u': // SETITEMS
		var vals []any
		if vals, err = u.popMark(); err == nil {
			var d any
			if d, err = u.top(); err == nil {
				err = setItemsOn(d, vals)
			}
		}
	case 0x8f: // EMPTY_SET: only an empty set survives (as a list)
		err = u.push(&pyList{})
	case 0x90: // ADDITEMS
		var vals []any
		if vals, err = u.popMark(); err == nil {
			var l any
			if l, err = u.top(); err == nil {
				err = appendItems(l, vals)
			}
		}
	case 0x91: // FROZENSET
		var vals []any
		if vals, err = u.popMark(); err == nil {
			err = u.push(pyTuple(vals))
		}

	// Memo.
	case 'p': // PUT (text)
		var s string
		if s, err = u.line(); err == nil {
			var i int
			if i, err = strconv.Atoi(s); err != nil {
				err = fmt.Errorf("PUT %q: not an index", s)
			} else {
				var v any
				if v, err = u.top(); err == nil {
					err = u.memoPut(i, v)
				}
			}
		}
	case 'q': // BINPUT
		var b []byte
		if b, err = u.need(1); err == nil {
			var v any
			if v, err = u.top(); err == nil {
				err = u.memoPut(int(b[0]), v)
			}
		}
	case 'r': // LONG_BINPUT
		var b []byte
		if b, err = u.need(4); err == nil {
			var v any
			if v, err = u.top(); err == nil {
				err = u.memoPut(int(binary.LittleEndian.Uint32(b)), v)
			}
		}
	case 0x94: // MEMOIZE
		var v any
		if v, err = u.top(); err == nil {
			err = u.memoPut(len(u.memo), v)
		}
	case 'g': // GET (text)
		var s string
		if s, err = u.line(); err == nil {
			var i int
			if i, err = strconv.Atoi(s); err != nil {
				err = fmt.Errorf("GET %q: not an index", s)
			} else {
				err = u.memoGet(i)
			}
		}
	case 'h': // BINGET
		var b []byte
		if b, err = u.need(1); err == nil {
			err = u.memoGet(int(b[0]))
		}
	case 'j': // LONG_BINGET
		var b []byte
		if b, err = u.need(4); err == nil {
			err = u.memoGet(int(binary.LittleEndian.Uint32(b)))
		}

	// Globals, calls, persistent ids.
	case 'c': // GLOBAL "module\nname\n"
		var mod, name string
		if mod, err = u.line(); err == nil {
			if name, err = u.line(); err == nil {
				var g *pyGlobal
				if g, err = lookupGlobal(mod, name); err == nil {
					err = u.push(g)
				}
			}
		}
	case 0x93: // STACK_GLOBAL
		var m, n any
		if n, err = u.pop(); err == nil {
			if m, err = u.pop(); err == nil {
				mod, ok1 := m.(string)
				name, ok2 := n.(string)
				if !ok1 || !ok2 {
					err = fmt.Errorf("STACK_GLOBAL of %s and %s (want two str)", typeName(m), typeName(n))
				} else {
					var g *pyGlobal
					if g, err = lookupGlobal(mod, name); err == nil {
						err = u.push(g)
					}
				}
			}
		}
	case 'R': // REDUCE
		var f, a any
		if a, err = u.pop(); err == nil {
			if f, err = u.pop(); err == nil {
				err = u.call(f, a)
			}
		}
	case 0x81: // NEWOBJ cls.__new__(cls, *args)
		var c, a any
		if a, err = u.pop(); err == nil {
			if c, err = u.pop(); err == nil {
				err = u.call(c, a)
			}
		}
	case 0x92: // NEWOBJ_EX cls.__new__(cls, *args, **kwargs): kwargs must be empty
		var c, a, kw any
		if kw, err = u.pop(); err == nil {
			if a, err = u.pop(); err == nil {
				if c, err = u.pop(); err == nil {
					if d, ok := kw.(*pyDict); !ok || len(d.keys) != 0 {
						err = errors.New("NEWOBJ_EX with keyword arguments is not supported")
					} else {
						err = u.call(c, a)
					}
				}
			}
		}
	case 'b': // BUILD
		var st, obj any
		if st, err = u.pop(); err == nil {
			if obj, err = u.top(); err == nil {
				err = build(obj, st)
			}
		}
	case 'Q': // BINPERSID
		var id any
		if id, err = u.pop(); err == nil {
			err = u.persid(id)
		}
	case 'P': // PERSID (text id)
		var s string
		if s, err = u.line(); err == nil {
			err = u.persid(s)
		}
	default:
		name := opNames[op]
		if name == "" {
			return nil, false, fmt.Errorf("unknown opcode 0x%02x", op)
		}
		return nil, false, fmt.Errorf("opcode %s is not supported in a state dict", name)
	}
	return nil, false, err
}

// opNames are the known opcodes the VM refuses (they build arbitrary
// objects or need out-of-band data).
var opNames = map[byte]string{
	'i': "INST", 'o': "OBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
	0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
}

func (u *unpickler) persid(id any) error {
	if u.persistentLoad == nil {
		return errors.New("persistent id without a loader")
	}
	v, err := u.persistentLoad(id)
	if err != nil {
		return err
	}
	return u.push(v)
}

// sized reads the length-prefixed payload of a string/bytes opcode.
func (u *unpickler) sized(op byte) ([]byte, error) {
	var n uint64
	switch op {
	case 0x8c, 'U', 'C': // 1-byte length
		b, err := u.need(1)
		if err != nil {
			return nil, err
		}
		n = uint64(b[0])
	case 'X', 'B': // 4-byte unsigned length
		b, err := u.need(4)
		if err != nil {
			return nil, err
		}
		n = uint64(binary.LittleEndian.Uint32(b))
	case 'T': // 4-byte signed length
		b, err := u.need(4)
		if err != nil {
			return nil, err
		}
		i := int32(binary.LittleEndian.Uint32(b))
		if i < 0 {
			return nil, fmt.Errorf("negative string length %d", i)
		}
		n = uint64(i)
	case 0x8d, 0x8e: // 8-byte length
		b, err := u.need(8)
		if err != nil {
			return nil, err
		}
		n = binary.LittleEndian.Uint64(b)
	}
	if n > uint64(len(u.data)-u.pos) {
		return nil, fmt.Errorf("string of %d bytes runs past the end of the pickle (%d bytes left)", n, len(u.data)-u.pos)
	}
	return u.need(int(n))
}

func latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// decodeLong decodes a little-endian two's-complement integer.
func decodeLong(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	if len(b) <= 8 {
		var x uint64
		for i := len(b) - 1; i >= 0; i-- {
			x = x<<8 | uint64(b[i])
		}
		// sign-extend from len(b) bytes
		shift := uint(64 - 8*len(b))
		return int64(x<<shift) >> shift
	}
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	v := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return v
}

func appendItems(l any, vals []any) error {
	switch c := l.(type) {
	case *pyList:
		c.items = append(c.items, vals...)
		return nil
	}
	return fmt.Errorf("APPEND(S) to a %s", typeName(l))
}

func setItemsOn(d any, vals []any) error {
	dd, ok := d.(*pyDict)
	if !ok {
		return fmt.Errorf("SETITEM(S) on a %s", typeName(d))
	}
	return setItems(dd, vals)
}

func setItems(d *pyDict, vals []any) error {
	if len(vals)%2 != 0 {
		return fmt.Errorf("SETITEMS with an odd number (%d) of values", len(vals))
	}
	for i := 0; i < len(vals); i += 2 {
		if err := d.set(vals[i], vals[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// build applies BUILD's state: only a dict's attribute dict (an
// OrderedDict's _metadata) is accepted; it is kept, never interpreted.
func build(obj, state any) error {
	switch o := obj.(type) {
	case *pyDict:
		st, ok := state.(*pyDict)
		if !ok {
			if _, none := state.(pyNone); none {
				return nil
			}
			return fmt.Errorf("BUILD of a dict with a %s state", typeName(state))
		}
		o.attrs = st
		return nil
	case *tensorRef:
		// A tensor subclass's __dict__ state (_rebuild_from_type_v2 and
		// _rebuild_parameter_with_state pass theirs as arguments; this is
		// the older form): ignored like backward hooks.
		return nil
	}
	return fmt.Errorf("BUILD of a %s", typeName(obj))
}
