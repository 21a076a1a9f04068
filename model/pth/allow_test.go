package pth

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestRefusedGlobals: pickles naming globals off the allow-list, by every
// opcode that can name one (GLOBAL, STACK_GLOBAL, INST), are refused with
// an error that names the global; nothing is called.
func TestRefusedGlobals(t *testing.T) {
	stackGlobal := func(mod, name string) []byte {
		b := []byte{0x80, 4, 0x8c, byte(len(mod))}
		b = append(b, mod...)
		b = append(b, 0x8c, byte(len(name)))
		b = append(b, name...)
		return append(b, 0x93, 0x8c, 2, 'l', 's', 0x85, 'R', '.')
	}
	call := func(mod, name string) []byte {
		return newPickle().global(mod, name).str("echo pwned").op(0x85, 'R').stop()
	}
	// a real-looking state dict whose second value is a call to mod.name
	inDict := func(mod, name string) []byte {
		return newPickle().dict(func(p *pk) {
			p.str("w").tensorV2("FloatStorage", "0", 2, 0, []int64{2}, []int64{1})
			p.str("x").global(mod, name).str("id").op(0x85, 'R')
		}).stop()
	}
	cases := []struct {
		name, global string
		pkl          []byte
	}{
		{"os.system", "os.system", call("os", "system")},
		{"posix.system", "posix.system", call("posix", "system")},
		{"nt.system", "nt.system", call("nt", "system")},
		{"builtins.eval", "builtins.eval", call("builtins", "eval")},
		{"builtins.exec", "builtins.exec", call("builtins", "exec")},
		{"__builtin__.eval", "__builtin__.eval", call("__builtin__", "eval")},
		{"builtins.getattr", "builtins.getattr", call("builtins", "getattr")},
		{"builtins.__import__", "builtins.__import__", call("builtins", "__import__")},
		{"subprocess.Popen", "subprocess.Popen", call("subprocess", "Popen")},
		{"subprocess.check_output", "subprocess.check_output", call("subprocess", "check_output")},
		{"torch.load", "torch.load", call("torch", "load")},
		{"torch.storage._load_from_bytes", "torch.storage._load_from_bytes", call("torch.storage", "_load_from_bytes")},
		{"torch._utils._rebuild_qtensor", "torch._utils._rebuild_qtensor", call("torch._utils", "_rebuild_qtensor")},
		{"numpy reconstruct", "numpy.core.multiarray._reconstruct", call("numpy.core.multiarray", "_reconstruct")},
		{"codecs", "_codecs.encode", call("_codecs", "encode")},
		{"a model class", "mymodels.Net", call("mymodels", "Net")},
		{"in a state dict", "os.system", inDict("os", "system")},
		{"STACK_GLOBAL os.system", "os.system", stackGlobal("os", "system")},
		{"STACK_GLOBAL builtins.eval", "builtins.eval", stackGlobal("builtins", "eval")},
		{"INST", "os.system", append([]byte("(S'ls'\nios\nsystem\n"), '.')},
		{"lookalike module", "torch._utils2._rebuild_tensor_v2", call("torch._utils2", "_rebuild_tensor_v2")},
		{"lookalike name", "torch._utils._rebuild_tensor_v2x", call("torch._utils", "_rebuild_tensor_v2x")},
		{"torch attribute", "torch.FloatTensor", call("torch", "FloatTensor")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := archive(t, c.pkl, map[string][]byte{"0": f32Bytes(1, 2)})
			_, err := openBytes(b, "evil.pth")
			if err == nil {
				t.Fatal("opened")
			}
			if !errors.Is(err, ErrGlobal) || !strings.Contains(err.Error(), c.global) || !strings.Contains(err.Error(), "evil.pth") {
				t.Fatalf("error %q: want ErrGlobal naming %s and the file", err, c.global)
			}
		})
	}
}

// TestAllowedGlobalsMisused: names on the allow-list used in ways state
// dicts never do are refused too.
func TestAllowedGlobalsMisused(t *testing.T) {
	st := map[string][]byte{"0": f32Bytes(1, 2)}
	cases := []struct {
		name, want string
		pkl        []byte
	}{
		{"call a storage type", "FloatStorage", newPickle().global("torch", "FloatStorage").int(5).op(0x85, 'R').stop()},
		{"call a dtype", "torch.float32", newPickle().global("torch", "float32").op(')', 'R').stop()},
		{"rebuild with 2 args", "want 6 or 7", newPickle().global("torch._utils", "_rebuild_tensor_v2").int(1).int(2).op(0x86, 'R').stop()},
		{"rebuild of a non-storage", "storage argument of type int", newPickle().global("torch._utils", "_rebuild_tensor").mark().int(1).int(0).ints(2).ints(1).tuple().op('R').stop()},
		{"parameter of an int", "want a tensor", newPickle().global("torch._utils", "_rebuild_parameter").mark().int(1).op(0x89).op('}').tuple().op('R').stop()},
		{"reduce of a string", "not a callable", newPickle().str("os").str("x").op(0x85, 'R').stop()},
		{"reduce with dict args", "want a tuple", newPickle().global("collections", "OrderedDict").op('}', 'R').stop()},
		{"from_type of another type", "tensor type", newPickle().global("torch._tensor", "_rebuild_from_type_v2").mark().global("torch._utils", "_rebuild_tensor_v2").global("collections", "OrderedDict").op(')').op('}').tuple().op('R').stop()},
		{"OBJ", "OBJ", newPickle().mark().global("collections", "OrderedDict").op('o', '.').b},
		{"EXT1", "EXT1", newPickle().op(0x82, 1, '.').b},
		{"persistent id not a storage", "persistent id", newPickle().str("x").op('Q', '.').b},
		{"persistent id of an unknown kind", "want 'storage'", newPickle().mark().str("module").global("torch", "FloatStorage").str("0").str("cpu").int(2).tuple().op('Q', '.').b},
		{"storage type not a storage", "storage type", newPickle().mark().str("storage").global("collections", "OrderedDict").str("0").str("cpu").int(2).tuple().op('Q', '.').b},
		{"storage key with a slash", "plain name", newPickle().persid("FloatStorage", "../0", 2).stop()},
		{"top level not a dict", "holds a value of type int", newPickle().int(3).stop()},
		{"top level tensor", "single tensor", newPickle().tensorV2("FloatStorage", "0", 2, 0, []int64{2}, []int64{1}).stop()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := openBytes(archive(t, c.pkl, st), "odd.pth")
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "odd.pth") {
				t.Fatalf("error %v, want one naming %q and the file", err, c.want)
			}
		})
	}
}

// TestTorch2Rebuilds: the rebuild forms of torch 2.x (_rebuild_tensor_v3
// with a dtype over an untyped storage, _rebuild_from_type_v2,
// _rebuild_parameter_with_state), torch.Size and OrderedDict(pairs).
func TestTorch2Rebuilds(t *testing.T) {
	p := newPickle().global("collections", "OrderedDict").mark()
	// OrderedDict([("a", v3 tensor)]) built from a list of pairs
	p.op(']').mark().str("a")
	p.global("torch._utils", "_rebuild_tensor_v3").mark()
	p.persid("UntypedStorage", "0", 12).int(1).ints(2).ints(1).op(0x89).op('}').global("torch", "float32")
	p.tuple().op('R').op(0x86).op('e').tuple().op('R')
	// b: _rebuild_from_type_v2(_rebuild_tensor_v2, Parameter, args, {}) over storage 1
	p.mark().str("b").global("torch._tensor", "_rebuild_from_type_v2").mark()
	p.global("torch._utils", "_rebuild_tensor_v2").global("torch.nn.parameter", "Parameter")
	p.mark().persid("FloatStorage", "1", 2).int(0).global("torch", "Size").ints(2).op(0x85, 'R').ints(1).op(0x89).op('}').tuple()
	p.op('}').tuple().op('R')
	// c: _rebuild_parameter_with_state(tensor, True, hooks, state)
	p.str("c").global("torch._utils", "_rebuild_parameter_with_state").mark()
	p.tensorV2("FloatStorage", "1", 2, 1, []int64{1}, []int64{1}).op(0x88).op('}').op('}').tuple().op('R')
	p.op('u')
	b := archive(t, p.stop(), map[string][]byte{"0": f32Bytes(7, 8, 9), "1": f32Bytes(1, 2)})
	f, err := openBytes(b, "v3.pth")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Names(); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Fatalf("names %q", got)
	}
	for name, want := range map[string][]float32{"a": {8, 9}, "b": {1, 2}, "c": {2}} {
		v, _, err := f.Float32(name)
		if err != nil || !reflect.DeepEqual(v, want) {
			t.Fatalf("%s = %v %v, want %v", name, v, err, want)
		}
	}
}
