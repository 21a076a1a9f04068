package pth

import (
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
)

// ErrGlobal is wrapped by the error for a pickle global that is not on the
// allow-list (errors.Is(err, ErrGlobal)).
var ErrGlobal = errors.New("global not on the allow-list")

// dtype is an element type of a storage or tensor.
type dtype struct {
	name string // safetensors spelling: F32, BF16, I64, BOOL, ...
	size int    // bytes per element
}

var (
	dtF64  = &dtype{"F64", 8}
	dtF32  = &dtype{"F32", 4}
	dtF16  = &dtype{"F16", 2}
	dtBF16 = &dtype{"BF16", 2}
	dtI64  = &dtype{"I64", 8}
	dtI32  = &dtype{"I32", 4}
	dtI16  = &dtype{"I16", 2}
	dtI8   = &dtype{"I8", 1}
	dtU8   = &dtype{"U8", 1}
	dtBool = &dtype{"BOOL", 1}
)

// storageTypes are the typed storage classes torch.save names (module
// torch) with their element types; UntypedStorage holds bytes.
var storageTypes = map[string]*dtype{
	"DoubleStorage": dtF64, "FloatStorage": dtF32, "HalfStorage": dtF16,
	"BFloat16Storage": dtBF16, "LongStorage": dtI64, "IntStorage": dtI32,
	"ShortStorage": dtI16, "CharStorage": dtI8, "ByteStorage": dtU8,
	"BoolStorage": dtBool, "UntypedStorage": dtU8,
}

// dtypeGlobals are torch's dtype objects (torch.float32, ...), pickled as
// globals of module torch by torch 2.x (e.g. in _rebuild_tensor_v3).
var dtypeGlobals = map[string]*dtype{
	"float64": dtF64, "double": dtF64, "float32": dtF32, "float": dtF32,
	"float16": dtF16, "half": dtF16, "bfloat16": dtBF16,
	"int64": dtI64, "long": dtI64, "int32": dtI32, "int": dtI32,
	"int16": dtI16, "short": dtI16, "int8": dtI8, "uint8": dtU8, "bool": dtBool,
}

// The callables and types of the allow-list, by "module.name".
const (
	gOrderedDict     = "collections.OrderedDict"
	gRebuildTensor   = "torch._utils._rebuild_tensor"
	gRebuildTensorV2 = "torch._utils._rebuild_tensor_v2"
	gRebuildTensorV3 = "torch._utils._rebuild_tensor_v3"
	gRebuildParam    = "torch._utils._rebuild_parameter"
	gRebuildParamSt  = "torch._utils._rebuild_parameter_with_state"
	gRebuildFromType = "torch._tensor._rebuild_from_type_v2"
	gTensor          = "torch.Tensor"
	gParameter       = "torch.nn.parameter.Parameter"
	gSize            = "torch.Size"
)

var allowedCalls = map[string]bool{
	gOrderedDict: true, gRebuildTensor: true, gRebuildTensorV2: true, gRebuildTensorV3: true,
	gRebuildParam: true, gRebuildParamSt: true, gRebuildFromType: true,
	gTensor: true, gParameter: true, gSize: true,
}

// AllowedGlobals lists the allow-list (module.name), sorted.
func AllowedGlobals() []string {
	var out []string
	for k := range allowedCalls {
		out = append(out, k)
	}
	for k := range storageTypes {
		out = append(out, "torch."+k)
	}
	out = append(out, "torch.storage.UntypedStorage")
	for k := range dtypeGlobals {
		out = append(out, "torch."+k)
	}
	sort.Strings(out)
	return out
}

// lookupGlobal resolves GLOBAL/STACK_GLOBAL: a name on the allow-list
// becomes a pyGlobal value; any other is an error naming it.
func lookupGlobal(module, name string) (*pyGlobal, error) {
	full := module + "." + name
	switch {
	case allowedCalls[full]:
	case module == "torch" && storageTypes[name] != nil:
	case module == "torch.storage" && name == "UntypedStorage":
	case module == "torch" && dtypeGlobals[name] != nil:
	default:
		return nil, fmt.Errorf("%w: %s", ErrGlobal, quoteGlobal(full))
	}
	return &pyGlobal{module: module, name: name}, nil
}

// quoteGlobal prints a global's name safely (it comes from the file).
func quoteGlobal(s string) string {
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	q := fmt.Sprintf("%q", s)
	return q[1 : len(q)-1]
}

func (g *pyGlobal) full() string { return g.module + "." + g.name }

// storageDtype is the element type of a storage-type global, or nil.
func (g *pyGlobal) storageDtype() *dtype {
	if g.module == "torch" || (g.module == "torch.storage" && g.name == "UntypedStorage") {
		return storageTypes[g.name]
	}
	return nil
}

func (g *pyGlobal) dtypeValue() *dtype {
	if g.module == "torch" {
		return dtypeGlobals[g.name]
	}
	return nil
}

// call runs REDUCE/NEWOBJ of f with args: only the allow-list's callables
// exist, each a few lines of Go that build a VM value.
func (u *unpickler) call(f, a any) error {
	g, ok := f.(*pyGlobal)
	if !ok {
		return fmt.Errorf("REDUCE of a %s (not a callable)", typeName(f))
	}
	args, ok := a.(pyTuple)
	if !ok {
		return fmt.Errorf("REDUCE of %s with %s arguments (want a tuple)", g.full(), typeName(a))
	}
	v, err := callGlobal(g, args)
	if err != nil {
		return fmt.Errorf("%s: %w", g.full(), err)
	}
	return u.push(v)
}

func callGlobal(g *pyGlobal, args pyTuple) (any, error) {
	switch g.full() {
	case gOrderedDict:
		// OrderedDict() or OrderedDict(list of pairs)
		d := &pyDict{}
		if len(args) == 0 {
			return d, nil
		}
		if len(args) == 1 {
			var items []any
			switch c := args[0].(type) {
			case *pyList:
				items = c.items
			case pyTuple:
				items = c
			case *pyDict:
				for i := range c.keys {
					if err := d.set(c.keys[i], c.vals[i]); err != nil {
						return nil, err
					}
				}
				return d, nil
			default:
				return nil, fmt.Errorf("argument of type %s", typeName(args[0]))
			}
			for _, it := range items {
				p, ok := it.(pyTuple)
				if !ok || len(p) != 2 {
					return nil, errors.New("items are not (key, value) pairs")
				}
				if err := d.set(p[0], p[1]); err != nil {
					return nil, err
				}
			}
			return d, nil
		}
		return nil, fmt.Errorf("%d arguments (want 0 or 1)", len(args))
	case gRebuildTensor: // (storage, offset, size, stride)
		if len(args) != 4 {
			return nil, fmt.Errorf("%d arguments (want 4)", len(args))
		}
		return newTensorRef(args[0], args[1], args[2], args[3], nil)
	case gRebuildTensorV2: // (storage, offset, size, stride, requires_grad, hooks[, metadata])
		if len(args) < 6 || len(args) > 7 {
			return nil, fmt.Errorf("%d arguments (want 6 or 7)", len(args))
		}
		return newTensorRef(args[0], args[1], args[2], args[3], nil)
	case gRebuildTensorV3: // (storage, offset, size, stride, requires_grad, hooks, dtype[, metadata])
		if len(args) < 7 || len(args) > 8 {
			return nil, fmt.Errorf("%d arguments (want 7 or 8)", len(args))
		}
		dg, ok := args[6].(*pyGlobal)
		if !ok || dg.dtypeValue() == nil {
			return nil, fmt.Errorf("dtype argument of type %s", typeName(args[6]))
		}
		return newTensorRef(args[0], args[1], args[2], args[3], dg.dtypeValue())
	case gRebuildParam, gRebuildParamSt: // (data, requires_grad, hooks[, state])
		want := 3
		if g.name == "_rebuild_parameter_with_state" {
			want = 4
		}
		if len(args) != want {
			return nil, fmt.Errorf("%d arguments (want %d)", len(args), want)
		}
		t, ok := args[0].(*tensorRef)
		if !ok {
			return nil, fmt.Errorf("data of type %s (want a tensor)", typeName(args[0]))
		}
		return t, nil
	case gRebuildFromType: // (func, type, args, state): func(*args) for Tensor/Parameter only
		if len(args) != 4 {
			return nil, fmt.Errorf("%d arguments (want 4)", len(args))
		}
		fn, ok1 := args[0].(*pyGlobal)
		ty, ok2 := args[1].(*pyGlobal)
		inner, ok3 := args[2].(pyTuple)
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("arguments of types %s, %s, %s (want global, type, tuple)", typeName(args[0]), typeName(args[1]), typeName(args[2]))
		}
		if tn := ty.full(); tn != gTensor && tn != gParameter {
			return nil, fmt.Errorf("tensor type %s is not supported", tn)
		}
		switch fn.full() {
		case gRebuildTensor, gRebuildTensorV2, gRebuildTensorV3:
		default:
			return nil, fmt.Errorf("rebuild function %s is not supported", fn.full())
		}
		v, err := callGlobal(fn, inner)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fn.full(), err)
		}
		return v, nil
	case gSize: // torch.Size(tuple)
		if len(args) != 1 {
			return nil, fmt.Errorf("%d arguments (want 1)", len(args))
		}
		switch c := args[0].(type) {
		case pyTuple:
			return c, nil
		case *pyList:
			return pyTuple(c.items), nil
		}
		return nil, fmt.Errorf("argument of type %s", typeName(args[0]))
	}
	if g.storageDtype() != nil || g.dtypeValue() != nil || g.full() == gTensor || g.full() == gParameter {
		return nil, errors.New("calling it is not supported in a state dict")
	}
	return nil, fmt.Errorf("%w: %s", ErrGlobal, g.full())
}

// toInt converts a VM int (or bool) to int64.
func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case *big.Int:
		if x.IsInt64() {
			return x.Int64(), true
		}
	}
	return 0, false
}

// intTuple converts a tuple/list of ints (a size or stride).
func intTuple(v any, what string) ([]int64, error) {
	var items []any
	switch c := v.(type) {
	case pyTuple:
		items = c
	case *pyList:
		items = c.items
	default:
		return nil, fmt.Errorf("%s of type %s (want a tuple of ints)", what, typeName(v))
	}
	if len(items) > maxDims {
		return nil, fmt.Errorf("%s has %d dimensions (at most %d)", what, len(items), maxDims)
	}
	out := make([]int64, len(items))
	for i, it := range items {
		x, ok := toInt(it)
		if !ok {
			return nil, fmt.Errorf("%s[%d] of type %s (want an int)", what, i, typeName(it))
		}
		out[i] = x
	}
	return out, nil
}

func joinInts(xs []int64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return "[" + strings.Join(s, " ") + "]"
}
