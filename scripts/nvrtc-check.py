"""Compiles deepgen's CUDA kernel sources (the `pub const NAME: &str = r#"..."#;` strings of
crates/deepgen/src/nn/cuda.rs) with NVRTC, as the library does at run time on a GPU, and fails
with NVRTC's log when one does not compile: a check that needs no GPU.

    python3 scripts/nvrtc-check.py crates/deepgen/src/nn/cuda.rs PATH/libnvrtc.so.13 [compute_90]
"""
import ctypes
import re
import sys

path, libpath = sys.argv[1], sys.argv[2]
arch = sys.argv[3] if len(sys.argv) > 3 else "compute_90"
text = open(path).read()
consts = dict(re.findall(r'pub const (\w+): &str = r#"(.*?)"#;', text, re.S))
if "NVRTC_PRELUDE" not in consts:
    sys.exit(f"nvrtc-check: {path} has no NVRTC_PRELUDE")
prelude = consts["NVRTC_PRELUDE"]
# The modules the library compiles (nn::cuda::device::ptx callers), by their sources.
modules = {
    "deepgen_nade": ["SUM_PARTS", "NADE"],
    "deepgen_adam": ["ADAM"],
    "deepgen_im2col": ["SUM_PARTS", "IM2COL", "TAPS"],
    "deepgen_lstm": ["SUM_PARTS", "LSTM"],
}
lib = ctypes.CDLL(libpath)
failed = False
for name, parts in modules.items():
    missing = [p for p in parts if p not in consts]
    if missing:
        sys.exit(f"nvrtc-check: {path} has no source {missing}")
    code = (prelude + "".join(consts[p] for p in parts)).encode()
    prog = ctypes.c_void_p()
    if lib.nvrtcCreateProgram(ctypes.byref(prog), code, name.encode(), 0, None, None) != 0:
        sys.exit("nvrtc-check: nvrtcCreateProgram failed")
    opts = (ctypes.c_char_p * 1)(f"--gpu-architecture={arch}".encode())
    rc = lib.nvrtcCompileProgram(prog, 1, opts)
    n = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
    log = ctypes.create_string_buffer(n.value)
    lib.nvrtcGetProgramLog(prog, log)
    size = ctypes.c_size_t()
    lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
    status = "ok" if rc == 0 else f"FAILED (nvrtc {rc})"
    print(f"nvrtc-check: {name} ({'+'.join(parts)}) for {arch}: {status}, {size.value} bytes of PTX")
    if rc != 0:
        print(log.value.decode(), file=sys.stderr)
        failed = True
sys.exit(1 if failed else 0)
