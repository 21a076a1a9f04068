#!/usr/bin/env python3
"""Quantize a GGUF file with llama.cpp itself: llama_model_quantize() of the
prebuilt libllama that npm node-llama-cpp 3.22.1 ships
(node_modules/@node-llama-cpp/linux-x64/bins/linux-x64, llama.cpp v0.5.0),
called through ctypes: nothing is compiled.

  llamacpp_quantize.py IN.gguf OUT.gguf q8_0|q4_k_m|q4_k_s|q6_k [--pure]

The parameters start from llama_model_quantize_default_params(); only the
first two fields (int32 nthread, enum llama_ftype ftype) are set, plus
`pure` with --pure (every weight in the one type). llama.cpp's reference
quantizers (quantize_row_*_ref, no importance matrix) write the blocks.
"""
import ctypes
import os
import sys

FTYPES = {"q8_0": 7, "q4_k_s": 14, "q4_k_m": 15, "q6_k": 18, "q4_k": 15}


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 3 or args[2] not in FTYPES:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst, kind = args
    here = os.path.dirname(os.path.abspath(__file__))
    libdir = os.path.join(here, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64")
    for dep in ("libggml-base.so", "libggml.v0.5.0.so"):
        ctypes.CDLL(os.path.join(libdir, dep), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(os.path.join(libdir, "libllama.v0.5.0.so"))

    # a struct larger than 16 bytes is returned through a hidden pointer
    # (SysV x86-64), so a generous buffer receives it whatever its size
    class Params(ctypes.Structure):
        _fields_ = [("raw", ctypes.c_uint8 * 512)]

    lib.llama_model_quantize_default_params.restype = Params
    lib.llama_model_quantize.restype = ctypes.c_uint32
    lib.llama_model_quantize.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(Params)]
    if hasattr(lib, "llama_backend_init"):
        lib.llama_backend_init()
    p = lib.llama_model_quantize_default_params()
    ctypes.c_int32.from_buffer(p, 0).value = 2  # nthread
    ctypes.c_int32.from_buffer(p, 4).value = FTYPES[kind]  # ftype
    if "--pure" in sys.argv:
        # llama.h: int32 nthread; ftype; ggml_type output_tensor_type;
        # ggml_type token_embedding_type; bool allow_requantize;
        # bool quantize_output_tensor; bool only_copy; bool pure; ...
        ctypes.c_bool.from_buffer(p, 19).value = True
    rc = lib.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
    if rc != 0:
        print(f"llama_model_quantize({src}, {dst}, {kind}) failed: {rc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
