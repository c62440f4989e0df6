"""FlashOmni Python layer: duck-typed array views (NumPy, torch, CUDA array interface, DLPack).

Each supported object becomes an ArrayView: pointer, fo_dtype, device, shape and strides in
elements, plus whatever must stay alive while the C call runs. PyTorch is never imported here;
a torch tensor is recognised by its data_ptr()/stride()/dtype attributes.
"""

import ctypes
import struct

import numpy as np

from . import _lib

_NUMPY_CODES = {
    np.dtype(np.float32): _lib.FLOAT32,
    np.dtype(np.float16): _lib.FLOAT16,
    np.dtype(np.float64): _lib.FLOAT64,
    np.dtype(np.int32): _lib.INT32,
    np.dtype(np.uint32): _lib.UINT32,
    np.dtype(np.uint8): _lib.UINT8,
    np.dtype(np.bool_): _lib.UINT8,  # masks: one byte per flag, 0 or 1
}
_NUMPY_TYPES = {
    _lib.FLOAT32: np.float32,
    _lib.FLOAT16: np.float16,
    _lib.BFLOAT16: np.uint16,  # bf16 bits; NumPy has no bfloat16
    _lib.FLOAT64: np.float64,
    _lib.INT32: np.int32,
    _lib.UINT32: np.uint32,
    _lib.UINT8: np.uint8,
}
_TORCH_CODES = {
    "float32": _lib.FLOAT32,
    "float16": _lib.FLOAT16,
    "bfloat16": _lib.BFLOAT16,
    "float64": _lib.FLOAT64,
    "int32": _lib.INT32,
    "uint32": _lib.UINT32,
    "uint8": _lib.UINT8,
    "bool": _lib.UINT8,
}
# typestr of __cuda_array_interface__ (kind + bytes) -> code; bf16 has no typestr.
_TYPESTR_CODES = {
    "f4": _lib.FLOAT32,
    "f2": _lib.FLOAT16,
    "f8": _lib.FLOAT64,
    "i4": _lib.INT32,
    "u4": _lib.UINT32,
    "u1": _lib.UINT8,
    "b1": _lib.UINT8,
}
# DLPack (code, bits) -> code: kDLInt 0, kDLUInt 1, kDLFloat 2, kDLBfloat 4, kDLBool 6.
_DLPACK_CODES = {
    (2, 32): _lib.FLOAT32,
    (2, 16): _lib.FLOAT16,
    (2, 64): _lib.FLOAT64,
    (4, 16): _lib.BFLOAT16,
    (0, 32): _lib.INT32,
    (1, 32): _lib.UINT32,
    (1, 8): _lib.UINT8,
    (6, 8): _lib.UINT8,
}
# DLPack device types: kDLCPU 1, kDLCUDA 2, kDLCUDAHost 3 (pinned host), kDLCUDAManaged 13.
_DLPACK_DEVICES = {1: _lib.CPU, 2: _lib.CUDA, 3: _lib.CPU, 13: _lib.CUDA}


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class _DLManagedTensor(ctypes.Structure):
    # Only dl_tensor is read; the capsule keeps ownership (its destructor calls the deleter).
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p)]


_capsule_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_get_pointer.restype = ctypes.c_void_p
_capsule_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def is_torch(obj):
    return hasattr(obj, "data_ptr") and hasattr(obj, "stride") and hasattr(obj, "dtype")


def contiguous_strides(shape):
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(int(size), 1)
    return tuple(reversed(strides))


def dtype_code(dtype):
    """fo_dtype code for a dtype given as a string, NumPy dtype or torch dtype; None passes."""
    if dtype is None:
        return None
    name = str(dtype).replace("torch.", "")
    if name in ("bf16",):
        name = "bfloat16"
    if name in _lib.DTYPE_CODES:
        return _lib.DTYPE_CODES[name]
    try:
        return _NUMPY_CODES[np.dtype(dtype)]
    except (TypeError, KeyError):
        raise ValueError(f"unsupported dtype {dtype!r}") from None


# fo_tensor's bytes in native layout (data, dtype, device, ndim, shape[MAX_DIMS],
# strides[MAX_DIMS]); checked against the ctypes struct at import.
_TENSOR_LAYOUT = struct.Struct(f"@Piii{_lib.MAX_DIMS}q{_lib.MAX_DIMS}q")
if _TENSOR_LAYOUT.size != ctypes.sizeof(_lib.Tensor):
    raise ImportError(f"fo_tensor layout: packed {_TENSOR_LAYOUT.size} bytes, ctypes struct "
                      f"{ctypes.sizeof(_lib.Tensor)}")
_ZERO_DIMS = (0,) * _lib.MAX_DIMS


class ArrayView:
    """A validated, C-ready description of one array argument."""

    __slots__ = ("obj", "kind", "data", "dtype", "device", "device_index", "shape", "strides",
                 "keepalive")

    def __init__(self, obj, kind, data, dtype, device, device_index, shape, strides, keepalive=()):
        self.obj = obj
        self.kind = kind  # "numpy", "torch", "cai" or "dlpack"
        self.data = int(data or 0)
        self.dtype = dtype
        self.device = device
        self.device_index = device_index
        self.shape = tuple(map(int, shape))
        self.strides = tuple(map(int, strides))
        self.keepalive = keepalive

    @classmethod
    def _of_ints(cls, obj, kind, data, dtype, device, device_index, shape, strides):
        """__init__ for fields that are Python ints already (torch's shape, stride() and
        data_ptr()): every op argument passes here, and the int() conversions were a third of
        its cost."""
        v = cls.__new__(cls)
        v.obj, v.kind, v.data, v.dtype = obj, kind, data, dtype
        v.device, v.device_index, v.shape, v.strides, v.keepalive = (device, device_index, shape,
                                                                     strides, ())
        return v

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def numel(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def is_contiguous(self):
        expect = 1
        for size, stride in zip(reversed(self.shape), reversed(self.strides)):
            if size != 1 and stride != expect:
                return False
            expect *= size
        return True

    def c(self):
        """The fo_tensor of this view (packed in one go: field-by-field ctypes stores cost twice
        as much, and every op argument pays it)."""
        pad = _ZERO_DIMS[len(self.shape):]
        return _lib.Tensor.from_buffer_copy(_TENSOR_LAYOUT.pack(
            self.data, self.dtype, self.device, len(self.shape), *self.shape, *pad,
            *self.strides, *pad))


def _check_ndim(shape, name):
    if len(shape) > _lib.MAX_DIMS:
        raise ValueError(f"argument '{name}': at most {_lib.MAX_DIMS} dims, got {len(shape)}")


def _bf16_override(code, native_is_uint16, bf16, name):
    if native_is_uint16:
        if not bf16:
            raise ValueError(
                f"argument '{name}': a uint16 array holds bfloat16 bits only with dtype='bfloat16'"
            )
        return _lib.BFLOAT16
    if code is None:
        raise ValueError(f"argument '{name}': unsupported dtype")
    return code


def _from_numpy(arr, name, bf16):
    if not arr.dtype.isnative:
        raise ValueError(f"argument '{name}': byte-swapped arrays are not supported")
    _check_ndim(arr.shape, name)
    is_u16 = arr.dtype == np.uint16
    code = _bf16_override(_NUMPY_CODES.get(arr.dtype), is_u16, bf16, name)
    item = arr.dtype.itemsize
    if any(s % item for s in arr.strides):
        raise ValueError(
            f"argument '{name}': strides {arr.strides} are not multiples of {item} bytes")
    strides = tuple(s // item for s in arr.strides)
    return ArrayView(arr, "numpy", arr.ctypes.data, code, _lib.CPU, 0, arr.shape, strides)


# torch dtype -> its name and torch device -> (fo device, index), filled on first sight: str() of
# a dtype and device attribute reads cost ~10 us per tensor, paid by every op argument otherwise.
_TORCH_DTYPE_NAMES = {}
_TORCH_DEVICES = {}


def _torch_device_code(dev, name):
    found = _TORCH_DEVICES.get(dev)
    if found is None:
        dev_type = getattr(dev, "type", str(dev))
        if dev_type == "cuda":
            found = (_lib.CUDA, dev.index or 0)
        elif dev_type == "cpu":
            found = (_lib.CPU, 0)
        else:
            raise ValueError(f"argument '{name}': unsupported device {dev}")
        _TORCH_DEVICES[dev] = found
    return found


def _from_torch(t, name, bf16):
    dtype = t.dtype
    dname = _TORCH_DTYPE_NAMES.get(dtype)
    if dname is None:
        dname = _TORCH_DTYPE_NAMES.setdefault(dtype, str(dtype).replace("torch.", ""))
    shape = tuple(t.shape)
    if len(shape) > _lib.MAX_DIMS:
        _check_ndim(shape, name)
    code = _TORCH_CODES.get(dname)
    if code is None or dname == "uint16" or bf16:
        code = _bf16_override(code, dname == "uint16", bf16, name)
        if dname not in _TORCH_CODES and dname != "uint16":
            raise ValueError(f"argument '{name}': unsupported dtype {dname}")
    device, index = _torch_device_code(t.device, name)
    return ArrayView._of_ints(t, "torch", t.data_ptr(), code, device, index, shape, t.stride())


def _from_cai(obj, name, bf16):
    cai = obj.__cuda_array_interface__
    shape = tuple(cai["shape"])
    _check_ndim(shape, name)
    typestr = cai["typestr"]
    if typestr[0] == ">":
        raise ValueError(f"argument '{name}': big-endian arrays are not supported")
    key = typestr[1:]
    code = _bf16_override(_TYPESTR_CODES.get(key), key == "u2", bf16, name)
    item = int(key[1:])
    if cai.get("strides") is None:
        strides = contiguous_strides(shape)
    else:
        if any(s % item for s in cai["strides"]):
            raise ValueError(f"argument '{name}': strides are not multiples of {item} bytes")
        strides = tuple(s // item for s in cai["strides"])
    return ArrayView(obj, "cai", cai["data"][0], code, _lib.CUDA, 0, shape, strides)


def _from_dlpack(obj, name, bf16):
    capsule = obj.__dlpack__()
    ptr = _capsule_get_pointer(capsule, b"dltensor")
    dl = _DLManagedTensor.from_address(ptr).dl_tensor
    ndim = dl.ndim
    shape = tuple(dl.shape[i] for i in range(ndim))
    _check_ndim(shape, name)
    if dl.dtype.lanes != 1:
        raise ValueError(f"argument '{name}': vector dtypes (lanes > 1) are not supported")
    key = (dl.dtype.code, dl.dtype.bits)
    code = _bf16_override(_DLPACK_CODES.get(key), key == (1, 16), bf16, name)
    if dl.strides:
        strides = tuple(dl.strides[i] for i in range(ndim))
    else:
        strides = contiguous_strides(shape)
    device = _DLPACK_DEVICES.get(dl.device.device_type)
    if device is None:
        raise ValueError(
            f"argument '{name}': unsupported DLPack device type {dl.device.device_type}")
    data = (dl.data or 0) + dl.byte_offset
    return ArrayView(obj, "dlpack", data, code, device, dl.device.device_id, shape, strides,
                     keepalive=(capsule,))


_TORCH_TENSOR_TYPES = set()  # exact types seen to be torch tensors (the fast check below)


def view(obj, name, *, bf16=False, optional=False):
    """ArrayView of `obj` (None allowed when optional). bf16: uint16 data holds bfloat16 bits."""
    if type(obj) in _TORCH_TENSOR_TYPES:
        return _from_torch(obj, name, bf16)
    if obj is None:
        if optional:
            return None
        raise ValueError(f"argument '{name}': is required but was None")
    if isinstance(obj, np.ndarray):
        return _from_numpy(obj, name, bf16)
    if is_torch(obj):
        if type(obj).__module__.startswith("torch"):  # not a duck-typed look-alike
            _TORCH_TENSOR_TYPES.add(type(obj))
        return _from_torch(obj, name, bf16)
    if hasattr(obj, "__cuda_array_interface__"):
        return _from_cai(obj, name, bf16)
    if hasattr(obj, "__dlpack__"):
        return _from_dlpack(obj, name, bf16)
    if hasattr(obj, "__array_interface__") or hasattr(obj, "__array__"):
        return _from_numpy(np.asarray(obj), name, bf16)
    raise TypeError(
        f"argument '{name}': expected a NumPy array, a torch tensor or an object exposing "
        f"__cuda_array_interface__ / __dlpack__, got {type(obj).__name__}"
    )


def c_tensor(v):
    """fo_tensor of a view, or the "not given" tensor for None."""
    return _lib.Tensor() if v is None else v.c()


def _torch_device(torch, like):
    return like.obj.device if like.kind == "torch" else torch.device("cuda", like.device_index)


def allocate(like, shape, dtype, *, zero):
    """A new array of `shape` / fo_dtype on like's device and of like's kind.

    NumPy for host inputs that are not torch tensors (bf16 as uint16 bits); torch for torch inputs
    and for CUDA inputs of other kinds (torch must then be importable)."""
    shape = tuple(int(s) for s in shape)
    if like.kind == "torch" or like.device == _lib.CUDA:
        try:
            import torch
        except ImportError:
            raise ValueError(
                "output arrays for CUDA inputs that are not torch tensors must be passed "
                "explicitly "
                "(torch is not importable)"
            ) from None
        tdtype = getattr(torch, _lib.DTYPE_NAMES[dtype])
        device = _torch_device(torch, like)
        make = torch.zeros if zero else torch.empty
        return make(shape, dtype=tdtype, device=device)
    make = np.zeros if zero else np.empty
    return make(shape, dtype=_NUMPY_TYPES[dtype])


def host_int32(obj, name, like=None):
    """int32 array for cu_seqlens-like arguments: lists become arrays on like's device."""
    if obj is None:
        return None
    if isinstance(obj, (list, tuple)):
        arr = np.asarray(obj, dtype=np.int32)
        if like is not None and (like.kind == "torch" or like.device == _lib.CUDA):
            import torch

            return torch.as_tensor(arr, device=_torch_device(torch, like))
        return arr
    return obj


def to_numpy_host(obj, dtype=None):
    """Host NumPy copy/view of an array-like (torch tensors are moved to the CPU)."""
    if isinstance(obj, np.ndarray):
        arr = obj
    elif is_torch(obj):
        arr = obj.detach().cpu().numpy()
    else:
        arr = np.asarray(obj)
    return arr if dtype is None else arr.astype(dtype, copy=False)
