// Package pth reads PyTorch state dicts saved by torch.save (.pth, .pt,
// .bin) without running any of the file's code.
//
// # Format
//
// A torch.save file (torch >= 1.6, the zip format that is the default since
// then, 1.13 and 2.x included) is a zip archive whose entries lie under one
// folder <archive>/: data.pkl (the pickled object), data/<key> (the raw
// bytes of each storage), version, byteorder ("little" or "big"; absent in
// older files, meaning little), and in 2.x .data/serialization_id,
// .format_version and .storage_alignment, which are ignored. In data.pkl a
// tensor is the call torch._utils._rebuild_tensor_v2(storage, offset, size,
// stride, requires_grad, hooks) whose storage is a persistent id
// ('storage', torch.FloatStorage, key, location, numel); numel counts
// elements of the storage type (bytes for UntypedStorage). Tensors that
// share a storage name the same key.
//
// # What is read
//
// Open runs data.pkl in a small pickle VM (pickle.go: the opcodes of
// protocols 0–5 that state dicts use; INST, OBJ, EXT*, and out-of-band
// buffers are refused), checks every tensor view against its storage
// entry, and flattens the object into names: dict keys (str or int) and
// list/tuple indices joined with "." in stored order, so {"model": sd}
// gives "model.<name>". Values that are not tensors (numbers, strings,
// None, an OrderedDict's _metadata) are skipped. Tensor, Float32 and Raw
// read one tensor's storage (checking the zip entry's CRC-32) and copy its
// view out contiguous and little-endian: non-contiguous views (transposes,
// slices with an offset) are materialised, shared storages are read once
// per tensor. dtypes: F32, F64, BF16, F16, I64, I32, I16, I8, U8, BOOL.
// ConvertToSafetensors writes every tensor to a safetensors file under the
// same names, shapes and dtypes (magma convert pth2safetensors).
//
// # The allow-list
//
// A pickle names the Python callables it needs as globals (module.name).
// Only these are known; each is a few lines of Go, never a Python call:
//
//   - torch._utils._rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3
//     (a strided view of a storage), _rebuild_parameter and
//     _rebuild_parameter_with_state (an nn.Parameter: its tensor),
//     torch._tensor._rebuild_from_type_v2 (with type torch.Tensor or
//     torch.nn.parameter.Parameter and one of the rebuild functions),
//     torch.Tensor, torch.nn.parameter.Parameter (as those types);
//   - the storage types torch.{Double,Float,Half,BFloat16,Long,Int,Short,
//     Char,Byte,Bool}Storage and torch.UntypedStorage /
//     torch.storage.UntypedStorage (only inside a persistent id);
//   - the dtypes torch.float32, torch.bfloat16, ... (values only);
//   - collections.OrderedDict (a dict that keeps its order; its BUILD
//     state, the _metadata of module versions, is kept and ignored);
//   - torch.Size (a tuple).
//
// Any other global (os.system, builtins.eval, subprocess.Popen, a model
// class of a whole pickled nn.Module, numpy's reconstructors, ...) stops
// Open with an error naming it (errors.Is(err, ErrGlobal)); nothing is
// executed. AllowedGlobals lists the allow-list.
//
// # Limits
//
// Work and memory are bounded for any input: data.pkl at most 512 MiB, at
// most 2^26 opcodes, 2^20 stack values, 2^22 memo entries, 2^24 values in
// all; dicts/lists nested at most 64 deep when flattened and at most 2^24
// values visited (shared or cyclic containers cannot blow up); at most
// 2^20 tensors of at most 64 dimensions. A storage's zip entry must hold
// exactly the bytes its persistent id declares, lie inside the file, and,
// if deflated, declare no more than deflate's maximum ratio allows; a
// tensor's offset, shape and strides must be non-negative and its view must
// end inside its storage (an error names the tensor), and a view larger
// than its storage (stride 0) has at most 2^24 elements. Every error names
// the file and the reason (entry, tensor, opcode offset in data.pkl).
//
// Not supported: the legacy pre-1.6 (non-zip) torch.save format, TorchScript
// archives, quantized, sparse and complex tensors.
package pth
