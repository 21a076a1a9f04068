package nn

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

// Tags:
//
// Layer structs hold parameters as *tensor.Dense fields tagged with their
// checkpoint name segment:
//
//	type LayerNorm struct {
//		Weight *tensor.Dense `weights:"weight"`
//		Bias   *tensor.Dense `weights:"bias,optional"`
//	}
//	type Block struct {
//		Norm LayerNorm `weights:"norm"`          // nested struct: "norm."
//		MLP  *MLP      `weights:"mlp"`           // pointer to struct
//	}
//	type Stage struct {
//		Blocks []Block `weights:"blocks"`        // "blocks.0.", "blocks.1.", ...
//	}
//
// Supported field kinds: *tensor.Dense, struct, *struct, and slices/arrays
// of those (indexed by position). `weights:"-"` or no tag skips a field.
// Options after a comma: "optional" (the tensor may be absent from the
// checkpoint: Bind leaves it as constructed, normally zero; a nil optional
// tensor is skipped), "omitnil" (a nil tensor means the layer has no such
// parameter, as a Linear without bias; a non-nil one is required), "inline"
// with an empty name (`weights:",inline"`, the nested struct adds no path
// segment), "norm" (the scale of a normalisation layer: initialised to one
// and exempt from weight decay) and "nodecay" (exempt from weight decay:
// biases, layer scales, learned separators). The last two are declared on
// the layer types of this package and reported in Param, so initialisation
// and the optimizer never guess them from names.

// Tag is the struct tag key.
const Tag = "weights"

// maxWalkDepth bounds nesting (a cycle through pointers would never end).
const maxWalkDepth = 64

// Param is one parameter tensor, its checkpoint name and the properties its
// layer declares in the tag. It is the project's one named-tensor type:
// Parameters lists a model's as Params, and the trainable adapters (LoRA
// A and B, named as PEFT names them) are listed as Params too (without a
// field behind them: Set refuses them).
type Param struct {
	Name     string
	T        *tensor.Dense
	Optional bool // may be absent from a checkpoint
	Norm     bool // a normalisation scale (tag option "norm")
	NoDecay  bool // exempt from weight decay ("nodecay", or "norm")

	field reflect.Value // the struct field or slice element holding T
}

// Set replaces the tensor in the layer's field (e.g. with a view of a
// memory-mapped checkpoint, or a copy of another dtype). The new tensor must
// have T's shape; its dtype may differ. Graphs built before hold the old
// tensor: bind before building.
func (p *Param) Set(t *tensor.Dense) error {
	if t == nil {
		return fmt.Errorf("weights: tensor %q: setting nil", p.Name)
	}
	// A block-quantized tensor has the storage shape [out, in/block]; its
	// logical shape is the parameter's.
	if !tensor.Shape(kernels.LogicalShape(t)).Eq(p.T.Shape()) {
		return fmt.Errorf("weights: tensor %q shape mismatch: expected %v, got %v", p.Name, []int(p.T.Shape()), kernels.LogicalShape(t))
	}
	if !p.field.IsValid() || !p.field.CanSet() {
		return fmt.Errorf("weights: tensor %q cannot be replaced (pass the root by pointer)", p.Name)
	}
	p.field.Set(reflect.ValueOf(t))
	p.T = t
	return nil
}

// tagOpts are the options of one tag, inherited by nested fields where it
// makes sense (optional).
type tagOpts struct {
	optional, omitnil, norm, nodecay bool
}

var denseType = reflect.TypeOf((*tensor.Dense)(nil))

func joinName(prefix, seg string) string {
	switch {
	case prefix == "":
		return seg
	case seg == "":
		return prefix
	case strings.HasSuffix(prefix, "."):
		return prefix + seg
	}
	return prefix + "." + seg
}

// Parameters returns every tagged tensor under root in field order, named
// prefix + "." + path. Nil optional tensors are skipped; a nil required
// tensor, a bad tag or a name used twice is an error.
func Parameters(root any, prefix string) ([]Param, error) {
	if root == nil {
		return nil, errors.New("weights: nil root")
	}
	var out []Param
	err := walk(root, prefix, func(p Param, _ reflect.Value) error {
		out = append(out, p)
		return nil
	})
	return out, err
}

// ConvertParams replaces every parameter tensor under root (a pointer to a
// model or layer) with a copy in dtype dt (kernels.BFloat16, Float16,
// Float32; see kernels.Convert: round to nearest even when narrowing),
// leaving tensors that already have dt alone. The old tensors are not
// modified. Adapters (LoRA) are not parameters of the checkpoint and stay
// as they are.
func ConvertParams(root any, dt tensor.Dtype) error {
	if v := reflect.ValueOf(root); v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("weights: ConvertParams needs a non-nil pointer, got %T", root)
	}
	return walk(root, "", func(p Param, field reflect.Value) error {
		if p.T.Dtype() == dt {
			return nil
		}
		if !field.CanSet() {
			return fmt.Errorf("weights: tensor %q cannot be replaced (not reached through a pointer)", p.Name)
		}
		c, err := kernels.Convert(p.T, dt)
		if err != nil {
			return fmt.Errorf("weights: tensor %q: %w", p.Name, err)
		}
		field.Set(reflect.ValueOf(c))
		return nil
	})
}

// walk calls visit for every tagged tensor under root with its field (the
// *tensor.Dense value, settable when reached through a pointer).
func walk(root any, prefix string, visit func(p Param, field reflect.Value) error) error {
	seen := map[string]bool{}
	return walkValue(reflect.ValueOf(root), strings.TrimSuffix(prefix, "."), tagOpts{}, 0, seen, visit, "root")
}

func walkValue(v reflect.Value, name string, opt tagOpts, depth int, seen map[string]bool, visit func(Param, reflect.Value) error, where string) error {
	if depth > maxWalkDepth {
		return fmt.Errorf("weights: %s: nesting deeper than %d (cycle?)", where, maxWalkDepth)
	}
	if v.Type() == denseType {
		if v.IsNil() {
			if opt.optional || opt.omitnil {
				return nil
			}
			return fmt.Errorf("weights: tensor %q (%s) is nil: the constructor must allocate it", name, where)
		}
		if name == "" {
			return fmt.Errorf("weights: tensor at %s has an empty name", where)
		}
		if seen[name] {
			return fmt.Errorf("weights: two fields map to the same tensor name %q (%s)", name, where)
		}
		seen[name] = true
		return visit(Param{Name: name, T: v.Interface().(*tensor.Dense), Optional: opt.optional,
			Norm: opt.norm, NoDecay: opt.norm || opt.nodecay, field: v}, v)
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil // an absent sub-module has no tensors
		}
		return walkValue(v.Elem(), name, opt, depth+1, seen, visit, where)
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag, ok := f.Tag.Lookup(Tag)
			if !ok || tag == "-" {
				continue
			}
			seg, opts, _ := strings.Cut(tag, ",")
			fopt := tagOpts{optional: opt.optional}
			inline := false
			for _, o := range strings.Split(opts, ",") {
				switch strings.TrimSpace(o) {
				case "":
				case "optional":
					fopt.optional = true
				case "omitnil":
					fopt.omitnil = true
				case "norm":
					fopt.norm = true
				case "nodecay":
					fopt.nodecay = true
				case "inline":
					inline = true
				default:
					return fmt.Errorf("weights: %s.%s: unknown tag option %q", t.Name(), f.Name, o)
				}
			}
			if seg == "" && !inline {
				return fmt.Errorf("weights: %s.%s: empty tag name (use `weights:\",inline\"` to add no path segment)", t.Name(), f.Name)
			}
			if !f.IsExported() {
				return fmt.Errorf("weights: %s.%s: tagged field must be exported", t.Name(), f.Name)
			}
			if err := walkValue(v.Field(i), joinName(name, seg), fopt, depth+1, seen, visit, t.Name()+"."+f.Name); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if err := walkValue(v.Index(i), joinName(name, strconv.Itoa(i)), opt, depth+1, seen, visit, fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("weights: %s: field of type %s cannot hold weights (want *tensor.Dense, struct, pointer or slice)", where, v.Type())
}

// ParamNames maps each tensor under root to its name (the node names of
// kernels.NewBuilder). Structural errors are
// not reported here (List reports them): the tensors found before the
// error are returned.
func ParamNames(root any, prefix string) map[*tensor.Dense]string {
	ps, _ := Parameters(root, prefix)
	m := make(map[*tensor.Dense]string, len(ps))
	for _, p := range ps {
		m[p.T] = p.Name
	}
	return m
}

// ParamCount is the number of scalar parameters under root.
func ParamCount(root any) (int64, error) {
	ps, err := Parameters(root, "")
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range ps {
		n += int64(p.T.Shape().TotalSize())
	}
	return n, nil
}
