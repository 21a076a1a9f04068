package hf

import (
	"errors"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Tensor is a rectangular numeric cell (nested lists of numbers or bools,
// e.g. a [T][N][2] trace), row-major.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Row is one row's values by column name: string and []byte (copied), int64,
// uint64, float64, bool, *Tensor (nested numeric lists that are
// rectangular), []any (other lists), map[string]any (structs), nil (null).
type Row map[string]any

// ErrNoColumn reports a column the file does not have.
var ErrNoColumn = errors.New("no such column")

// Row reads row r (0-based within the file) of the named columns (nil: all).
func (h *File) Row(r int, cols []string) (Row, error) {
	if r < 0 || r >= h.NumRows {
		return nil, fmt.Errorf("row %d outside [0,%d)", r, h.NumRows)
	}
	for _, c := range cols {
		if len(h.Schema.FieldIndices(c)) == 0 {
			return nil, fmt.Errorf("%w %q", ErrNoColumn, c)
		}
	}
	if h.pq != nil {
		g := h.pq.groupOf(r)
		tbl, err := h.pq.rowGroup(g, cols)
		if err != nil {
			return nil, err
		}
		defer tbl.Release()
		return tableRow(tbl, r-h.pq.first[g])
	}
	data, err := h.mapped()
	if err != nil {
		return nil, err
	}
	b := h.batchOf(r)
	rec, err := h.batch(data, b)
	if err != nil {
		return nil, fmt.Errorf("record batch %d: %w", b, err)
	}
	defer rec.Release()
	i := r - h.batches[b].first
	out := Row{}
	sch := rec.Schema()
	for c := 0; c < int(rec.NumCols()); c++ {
		name := sch.Field(c).Name
		if cols != nil && !contains(cols, name) {
			continue
		}
		v, err := Value(rec.Column(c), i)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

func tableRow(tbl arrow.Table, i int) (Row, error) {
	out := Row{}
	for c := 0; c < int(tbl.NumCols()); c++ {
		col := tbl.Column(c)
		j := i
		found := false
		for _, ch := range col.Data().Chunks() {
			if j < ch.Len() {
				v, err := Value(ch, j)
				if err != nil {
					return nil, fmt.Errorf("column %q: %w", col.Name(), err)
				}
				out[col.Name()] = v
				found = true
				break
			}
			j -= ch.Len()
		}
		if !found {
			return nil, fmt.Errorf("column %q: row %d missing", col.Name(), i)
		}
	}
	return out, nil
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// Value converts element i of arr to a Go value (see Row). A panic of an
// accessor on corrupt data becomes an error.
func Value(arr arrow.Array, i int) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("corrupt value: %v", r)
		}
	}()
	return value(arr, i)
}

func value(arr arrow.Array, i int) (any, error) {
	if i < 0 || i >= arr.Len() {
		return nil, fmt.Errorf("index %d outside [0,%d)", i, arr.Len())
	}
	if arr.IsNull(i) {
		return nil, nil
	}
	switch a := arr.(type) {
	// strings alias the (mapped) buffers: clone them so that they outlive
	// the mapping
	case *array.String:
		return strings.Clone(a.Value(i)), nil
	case *array.LargeString:
		return strings.Clone(a.Value(i)), nil
	case *array.StringView:
		return strings.Clone(a.Value(i)), nil
	case *array.Binary:
		return append([]byte(nil), a.Value(i)...), nil
	case *array.LargeBinary:
		return append([]byte(nil), a.Value(i)...), nil
	case *array.BinaryView:
		return append([]byte(nil), a.Value(i)...), nil
	case *array.FixedSizeBinary:
		return append([]byte(nil), a.Value(i)...), nil
	case *array.Boolean:
		return a.Value(i), nil
	case *array.Int8:
		return int64(a.Value(i)), nil
	case *array.Int16:
		return int64(a.Value(i)), nil
	case *array.Int32:
		return int64(a.Value(i)), nil
	case *array.Int64:
		return a.Value(i), nil
	case *array.Uint8:
		return int64(a.Value(i)), nil
	case *array.Uint16:
		return int64(a.Value(i)), nil
	case *array.Uint32:
		return int64(a.Value(i)), nil
	case *array.Uint64:
		return a.Value(i), nil
	case *array.Float16:
		return float64(a.Value(i).Float32()), nil
	case *array.Float32:
		return float64(a.Value(i)), nil
	case *array.Float64:
		return a.Value(i), nil
	case *array.Struct:
		st := a.DataType().(*arrow.StructType)
		m := map[string]any{}
		for f := 0; f < a.NumField(); f++ {
			v, err := value(a.Field(f), i)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", st.Field(f).Name, err)
			}
			m[st.Field(f).Name] = v
		}
		return m, nil
	case *array.Dictionary:
		return value(a.Dictionary(), a.GetValueIndex(i))
	case array.ListLike:
		if t, ok := tensor(a, i); ok {
			return t, nil
		}
		s, e := a.ValueOffsets(i)
		vals := a.ListValues()
		out := make([]any, 0, e-s)
		for j := s; j < e; j++ {
			v, err := value(vals, int(j))
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", j-s, err)
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported Arrow type %s", arr.DataType())
}

// tensor reads a list cell whose leaves are numbers/bools and whose
// nesting is rectangular; ok is false otherwise.
func tensor(a array.ListLike, i int) (*Tensor, bool) {
	t := &Tensor{}
	if !numericLeaves(a.DataType()) {
		return nil, false
	}
	if err := collect(a, i, i+1, -1, t); err != nil {
		return nil, false
	}
	return t, true
}

func numericLeaves(dt arrow.DataType) bool {
	switch d := dt.(type) {
	case arrow.ListLikeType:
		return numericLeaves(d.Elem())
	case *arrow.BooleanType:
		return true
	}
	return arrow.IsInteger(dt.ID()) || arrow.IsFloating(dt.ID())
}

var errRagged = errors.New("ragged")

// collect appends elements [lo,hi) of arr at nesting depth (the cell
// itself is depth -1) to t, checking every list at a depth has one length.
// The children of consecutive list elements are one contiguous range, so
// each level is one pass over offsets and the leaves are copied in bulk.
func collect(arr arrow.Array, lo, hi, depth int, t *Tensor) error {
	a, ok := arr.(array.ListLike)
	if !ok {
		return leaves(arr, lo, hi, t)
	}
	d := depth + 1
	var clo, chi int64
	for j := lo; j < hi; j++ {
		if a.IsNull(j) {
			return errRagged
		}
		s, e := a.ValueOffsets(j)
		n := int(e - s)
		if len(t.Shape) <= d {
			t.Shape = append(t.Shape, n)
		} else if t.Shape[d] != n {
			return errRagged
		}
		if j == lo {
			clo = s
		} else if s != chi {
			// not contiguous (a list view): element by element
			for k := lo; k < hi; k++ {
				s, e := a.ValueOffsets(k)
				if err := collect(a.ListValues(), int(s), int(e), d, t); err != nil {
					return err
				}
			}
			return nil
		}
		chi = e
	}
	if hi <= lo {
		return nil
	}
	return collect(a.ListValues(), int(clo), int(chi), d, t)
}

// leaves appends the numbers [lo,hi) of a primitive array.
func leaves(arr arrow.Array, lo, hi int, t *Tensor) error {
	if arr.NullN() > 0 {
		for j := lo; j < hi; j++ {
			if arr.IsNull(j) {
				return errRagged
			}
		}
	}
	switch a := arr.(type) {
	case *array.Float32:
		t.Data = append(t.Data, a.Float32Values()[lo:hi]...)
	case *array.Boolean:
		for j := lo; j < hi; j++ {
			t.Data = append(t.Data, b2f(a.Value(j)))
		}
	case *array.Float64:
		for _, v := range a.Float64Values()[lo:hi] {
			t.Data = append(t.Data, float32(v))
		}
	case *array.Float16:
		for j := lo; j < hi; j++ {
			t.Data = append(t.Data, a.Value(j).Float32())
		}
	case *array.Int8:
		t.Data = appendConv(t.Data, a.Int8Values()[lo:hi])
	case *array.Int16:
		t.Data = appendConv(t.Data, a.Int16Values()[lo:hi])
	case *array.Int32:
		t.Data = appendConv(t.Data, a.Int32Values()[lo:hi])
	case *array.Int64:
		t.Data = appendConv(t.Data, a.Int64Values()[lo:hi])
	case *array.Uint8:
		t.Data = appendConv(t.Data, a.Uint8Values()[lo:hi])
	case *array.Uint16:
		t.Data = appendConv(t.Data, a.Uint16Values()[lo:hi])
	case *array.Uint32:
		t.Data = appendConv(t.Data, a.Uint32Values()[lo:hi])
	case *array.Uint64:
		t.Data = appendConv(t.Data, a.Uint64Values()[lo:hi])
	default:
		return fmt.Errorf("type %s", arr.DataType())
	}
	return nil
}

func appendConv[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64](dst []float32, src []T) []float32 {
	for _, v := range src {
		dst = append(dst, float32(v))
	}
	return dst
}

func b2f(b bool) float32 {
	if b {
		return 1
	}
	return 0
}
