package rlds

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Kind is which list a tf.train.Feature holds.
type Kind int

// Feature kinds (the oneof field numbers of tf.train.Feature).
const (
	KindNone Kind = iota
	KindBytes
	KindFloat
	KindInt64
)

func (k Kind) String() string {
	switch k {
	case KindBytes:
		return "bytes_list"
	case KindFloat:
		return "float_list"
	case KindInt64:
		return "int64_list"
	}
	return "empty"
}

// Feature is one tf.train.Feature. Bytes alias the decoded buffer.
type Feature struct {
	Kind   Kind
	Bytes  [][]byte
	Floats []float32
	Ints   []int64
}

// Len is the number of values.
func (f *Feature) Len() int {
	switch f.Kind {
	case KindBytes:
		return len(f.Bytes)
	case KindFloat:
		return len(f.Floats)
	case KindInt64:
		return len(f.Ints)
	}
	return 0
}

// Example is a decoded tf.train.Example: feature key → values.
type Example map[string]*Feature

// wire types
const (
	wtVarint = 0
	wtI64    = 1
	wtLen    = 2
	wtI32    = 5
)

type pbuf struct {
	b   []byte
	pos int
}

var errTruncated = errors.New("truncated protobuf")

func (p *pbuf) varint() (uint64, error) {
	v, n := binary.Uvarint(p.b[p.pos:])
	if n <= 0 {
		if n == 0 {
			return 0, errTruncated
		}
		return 0, errors.New("varint overflows 64 bits")
	}
	p.pos += n
	return v, nil
}

func (p *pbuf) tag() (field int, wt int, err error) {
	v, err := p.varint()
	if err != nil {
		return 0, 0, err
	}
	if v>>3 == 0 || v>>3 > math.MaxInt32 {
		return 0, 0, fmt.Errorf("bad field number %d", v>>3)
	}
	return int(v >> 3), int(v & 7), nil
}

func (p *pbuf) bytes() ([]byte, error) {
	n, err := p.varint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(p.b)-p.pos) {
		return nil, errTruncated
	}
	s := p.b[p.pos : p.pos+int(n)]
	p.pos += int(n)
	return s, nil
}

func (p *pbuf) skip(wt int) error {
	switch wt {
	case wtVarint:
		_, err := p.varint()
		return err
	case wtI64:
		if len(p.b)-p.pos < 8 {
			return errTruncated
		}
		p.pos += 8
	case wtLen:
		_, err := p.bytes()
		return err
	case wtI32:
		if len(p.b)-p.pos < 4 {
			return errTruncated
		}
		p.pos += 4
	default:
		return fmt.Errorf("unsupported wire type %d", wt)
	}
	return nil
}

// DecodeExample decodes a serialised tf.train.Example. keep (nil: all)
// selects the feature keys to decode; the others are skipped without
// looking at their values.
func DecodeExample(b []byte, keep func(key string) bool) (Example, error) {
	ex := Example{}
	p := pbuf{b: b}
	for p.pos < len(p.b) {
		f, wt, err := p.tag()
		if err != nil {
			return nil, fmt.Errorf("example: %w", err)
		}
		if f != 1 || wt != wtLen { // Example.features
			if err := p.skip(wt); err != nil {
				return nil, fmt.Errorf("example: %w", err)
			}
			continue
		}
		fs, err := p.bytes()
		if err != nil {
			return nil, fmt.Errorf("example.features: %w", err)
		}
		if err := decodeFeatures(fs, ex, keep); err != nil {
			return nil, err
		}
	}
	return ex, nil
}

func decodeFeatures(b []byte, ex Example, keep func(string) bool) error {
	p := pbuf{b: b}
	for p.pos < len(p.b) {
		f, wt, err := p.tag()
		if err != nil {
			return fmt.Errorf("features: %w", err)
		}
		if f != 1 || wt != wtLen { // Features.feature (map entry)
			if err := p.skip(wt); err != nil {
				return fmt.Errorf("features: %w", err)
			}
			continue
		}
		entry, err := p.bytes()
		if err != nil {
			return fmt.Errorf("features map entry: %w", err)
		}
		var key string
		var val []byte
		hasVal := false
		q := pbuf{b: entry}
		for q.pos < len(q.b) {
			ef, ewt, err := q.tag()
			if err != nil {
				return fmt.Errorf("features map entry: %w", err)
			}
			switch {
			case ef == 1 && ewt == wtLen:
				k, err := q.bytes()
				if err != nil {
					return fmt.Errorf("feature key: %w", err)
				}
				key = string(k)
			case ef == 2 && ewt == wtLen:
				if val, err = q.bytes(); err != nil {
					return fmt.Errorf("feature %q: %w", key, err)
				}
				hasVal = true
			default:
				if err := q.skip(ewt); err != nil {
					return fmt.Errorf("features map entry: %w", err)
				}
			}
		}
		if keep != nil && !keep(key) {
			continue
		}
		ft := &Feature{}
		if hasVal {
			if err := decodeFeature(val, ft); err != nil {
				return fmt.Errorf("feature %q: %w", key, err)
			}
		}
		ex[key] = ft // a repeated key: the last one wins, as in protobuf maps
	}
	return nil
}

func decodeFeature(b []byte, ft *Feature) error {
	p := pbuf{b: b}
	for p.pos < len(p.b) {
		f, wt, err := p.tag()
		if err != nil {
			return err
		}
		if wt != wtLen || f < 1 || f > 3 {
			if err := p.skip(wt); err != nil {
				return err
			}
			continue
		}
		list, err := p.bytes()
		if err != nil {
			return err
		}
		// oneof: the last one set wins
		*ft = Feature{Kind: Kind(f)}
		if err := decodeList(list, ft); err != nil {
			return fmt.Errorf("%v: %w", ft.Kind, err)
		}
	}
	return nil
}

// decodeList decodes BytesList / FloatList / Int64List: field 1 repeated,
// packed (the default for proto3 scalars) or not.
func decodeList(b []byte, ft *Feature) error {
	p := pbuf{b: b}
	for p.pos < len(p.b) {
		f, wt, err := p.tag()
		if err != nil {
			return err
		}
		if f != 1 {
			if err := p.skip(wt); err != nil {
				return err
			}
			continue
		}
		switch ft.Kind {
		case KindBytes:
			if wt != wtLen {
				return fmt.Errorf("bytes value with wire type %d", wt)
			}
			v, err := p.bytes()
			if err != nil {
				return err
			}
			ft.Bytes = append(ft.Bytes, v)
		case KindFloat:
			switch wt {
			case wtI32:
				if len(p.b)-p.pos < 4 {
					return errTruncated
				}
				ft.Floats = append(ft.Floats, math.Float32frombits(binary.LittleEndian.Uint32(p.b[p.pos:])))
				p.pos += 4
			case wtLen:
				v, err := p.bytes()
				if err != nil {
					return err
				}
				if len(v)%4 != 0 {
					return fmt.Errorf("packed floats of %d bytes", len(v))
				}
				if ft.Floats == nil {
					ft.Floats = make([]float32, 0, len(v)/4)
				}
				for i := 0; i < len(v); i += 4 {
					ft.Floats = append(ft.Floats, math.Float32frombits(binary.LittleEndian.Uint32(v[i:])))
				}
			default:
				return fmt.Errorf("float value with wire type %d", wt)
			}
		case KindInt64:
			switch wt {
			case wtVarint:
				v, err := p.varint()
				if err != nil {
					return err
				}
				ft.Ints = append(ft.Ints, int64(v))
			case wtLen:
				v, err := p.bytes()
				if err != nil {
					return err
				}
				q := pbuf{b: v}
				for q.pos < len(q.b) {
					x, err := q.varint()
					if err != nil {
						return err
					}
					ft.Ints = append(ft.Ints, int64(x))
				}
			default:
				return fmt.Errorf("int64 value with wire type %d", wt)
			}
		}
	}
	return nil
}

// EncodeExample serialises an Example (keys in the given order; packed
// floats and ints, as TensorFlow writes them). Used by tests and tools
// that write fixtures from Go.
func EncodeExample(keys []string, ex Example) []byte {
	var feats []byte
	for _, k := range keys {
		f := ex[k]
		var list []byte
		switch f.Kind {
		case KindBytes:
			for _, v := range f.Bytes {
				list = appendLen(list, 1, v)
			}
		case KindFloat:
			var packed []byte
			for _, v := range f.Floats {
				packed = binary.LittleEndian.AppendUint32(packed, math.Float32bits(v))
			}
			list = appendLen(list, 1, packed)
		case KindInt64:
			var packed []byte
			for _, v := range f.Ints {
				packed = binary.AppendUvarint(packed, uint64(v))
			}
			list = appendLen(list, 1, packed)
		}
		var feat []byte
		if f.Kind != KindNone {
			feat = appendLen(nil, int(f.Kind), list)
		}
		entry := appendLen(nil, 1, []byte(k))
		entry = appendLen(entry, 2, feat)
		feats = appendLen(feats, 1, entry)
	}
	return appendLen(nil, 1, feats)
}

func appendLen(b []byte, field int, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(field)<<3|wtLen)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}
