# A small GGUF (v2/v3) reader in numpy for the PyTorch reference, written from the GGUF specification and
# independent of vklora's C reader: header, metadata, tensor infos, and F32 / F16 / BF16 tensor data.
#
# Layout (all little-endian): "GGUF" magic, u32 version, u64 tensor_count, u64 metadata_kv_count; then the
# key/value pairs (string key, u32 value type, value); then per tensor (string name, u32 n_dims, u64 ne[n_dims],
# u32 ggml type, u64 offset); the data section starts at the next multiple of general.alignment (default 32) and
# every tensor offset is relative to it. Strings are a u64 byte length followed by UTF-8 bytes (no NUL).
# ggml's ne[0] is the fastest-varying dimension, so a tensor with ne = [in, out] is a row-major numpy [out, in].
import mmap
import struct

import numpy as np

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4
MAX_NESTING = 8

# Metadata value types, numbered as in the specification: (name, struct format or None).
VALUE_TYPES = {
    0: ("uint8", "<B"), 1: ("int8", "<b"), 2: ("uint16", "<H"), 3: ("int16", "<h"),
    4: ("uint32", "<I"), 5: ("int32", "<i"), 6: ("float32", "<f"), 7: ("bool", "<B"),
    8: ("string", None), 9: ("array", None), 10: ("uint64", "<Q"), 11: ("int64", "<q"),
    12: ("float64", "<d"),
}

# ggml tensor types this reader can decode: type id -> (name, bytes per element).
TENSOR_TYPES = {0: ("F32", 4), 1: ("F16", 2), 30: ("BF16", 2)}


class GGUFError(ValueError):
    """A malformed or unsupported file; the message names the file, the byte offset and what was expected."""


class TensorInfo:
    def __init__(self, name, ne, ggml_type, offset, info_offset):
        self.name = name
        self.ne = tuple(ne)          # ggml order: ne[0] fastest
        self.ggml_type = ggml_type
        self.offset = offset         # relative to the data section
        self.info_offset = info_offset

    @property
    def shape(self):
        """numpy (row-major) shape: ne reversed."""
        return tuple(reversed(self.ne))

    @property
    def n_elements(self):
        n = 1
        for d in self.ne:
            n *= d
        return n


class GGUFFile:
    """Parsed GGUF file. `metadata` maps key -> python value (arrays become lists); `tensors` maps name ->
    TensorInfo; `tensor(name)` decodes one tensor to a float32 numpy array in numpy shape."""

    def __init__(self, path):
        self.path = str(path)
        with open(self.path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            if size == 0:
                raise GGUFError(f"{self.path}: empty file, expected a GGUF header")
            self._buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.size = size
        self._pos = 0
        self.metadata = {}
        self.tensors = {}
        self._parse()

    # --- primitive reads, each bounds-checked against the file size ---
    def _fail(self, what, at=None):
        at = self._pos if at is None else at
        raise GGUFError(f"{self.path}: byte offset {at}: {what}")

    def _take(self, n, what):
        if n < 0 or self._pos + n > self.size:
            self._fail(f"{what}: needs {n} bytes but the file ends at {self.size}")
        start = self._pos
        self._pos += n
        return start

    def _scalar(self, fmt, what):
        n = struct.calcsize(fmt)
        start = self._take(n, what)
        return struct.unpack_from(fmt, self._buf, start)[0]

    def _string(self, what):
        at = self._pos
        n = self._scalar("<Q", what + " length")
        if n > self.size - self._pos:
            self._fail(f"{what}: length {n} runs past the end of the file ({self.size} bytes)", at)
        start = self._take(n, what)
        raw = bytes(self._buf[start:start + n])
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            self._fail(f"{what}: not valid UTF-8 ({e.reason} at byte {e.start} of the string)", at)

    def _value(self, vtype, what, depth):
        if vtype not in VALUE_TYPES:
            self._fail(f"{what}: unknown metadata value type {vtype} (expected 0..12)")
        name, fmt = VALUE_TYPES[vtype]
        if fmt is not None:
            v = self._scalar(fmt, what)
            if name == "bool":
                if v > 1:
                    self._fail(f"{what}: bool byte is {v}, expected 0 or 1", self._pos - 1)
                return bool(v)
            return v
        if name == "string":
            return self._string(what)
        # array: u32 element type, u64 count, elements
        if depth >= MAX_NESTING:
            self._fail(f"{what}: arrays nested deeper than {MAX_NESTING}")
        etype = self._scalar("<I", what + " element type")
        at = self._pos
        count = self._scalar("<Q", what + " element count")
        if etype not in VALUE_TYPES:
            self._fail(f"{what}: unknown array element type {etype} (expected 0..12)", at - 4)
        # Every element takes at least one byte (strings and arrays at least 8), so a count beyond the
        # remaining bytes is malformed; checking it first keeps a hostile count from allocating.
        efmt = VALUE_TYPES[etype][1]
        min_size = struct.calcsize(efmt) if efmt is not None else 8
        if count > (self.size - self._pos) // min_size:
            self._fail(f"{what}: {count} elements of type {VALUE_TYPES[etype][0]} do not fit in the "
                       f"remaining {self.size - self._pos} bytes", at)
        if efmt is not None and VALUE_TYPES[etype][0] != "bool":
            start = self._take(count * min_size, what)
            return np.frombuffer(self._buf, dtype=np.dtype(efmt), count=count, offset=start).tolist()
        return [self._value(etype, f"{what}[{i}]", depth + 1) for i in range(count)]

    # --- the file ---
    def _parse(self):
        magic_at = self._take(4, "magic")
        magic = bytes(self._buf[magic_at:magic_at + 4])
        if magic != GGUF_MAGIC:
            self._fail(f"magic is {magic!r}, expected b'GGUF'", 0)
        self.version = self._scalar("<I", "version")
        if self.version not in (2, 3):
            self._fail(f"GGUF version {self.version} is not supported (expected 2 or 3)", 4)
        n_tensors = self._scalar("<Q", "tensor count")
        n_kv = self._scalar("<Q", "metadata key/value count")
        # A key/value pair needs at least 8 (key length) + 4 (type) + 1 bytes, a tensor info at least
        # 8 + 4 + 8 + 4 + 8; larger counts cannot fit and would only make the loops spin.
        if n_kv > self.size // 13:
            self._fail(f"metadata key/value count {n_kv} cannot fit in a {self.size}-byte file", 16)
        if n_tensors > self.size // 32:
            self._fail(f"tensor count {n_tensors} cannot fit in a {self.size}-byte file", 8)

        for i in range(n_kv):
            at = self._pos
            key = self._string(f"metadata pair {i} key")
            vtype = self._scalar("<I", f"metadata '{key}' value type")
            value = self._value(vtype, f"metadata '{key}'", 0)
            if key in self.metadata:
                self._fail(f"metadata key '{key}' appears twice", at)
            self.metadata[key] = value

        align = self.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if isinstance(align, bool) or not isinstance(align, int) or align <= 0 or align & (align - 1):
            raise GGUFError(f"{self.path}: metadata 'general.alignment' is {align!r}, expected a power of two")
        self.alignment = align

        infos = []
        for i in range(n_tensors):
            at = self._pos
            name = self._string(f"tensor info {i} name")
            n_dims = self._scalar("<I", f"tensor '{name}' n_dims")
            if not 1 <= n_dims <= MAX_DIMS:
                self._fail(f"tensor '{name}': n_dims {n_dims}, expected 1..{MAX_DIMS}", self._pos - 4)
            ne = [self._scalar("<Q", f"tensor '{name}' ne[{d}]") for d in range(n_dims)]
            ttype = self._scalar("<I", f"tensor '{name}' type")
            offset = self._scalar("<Q", f"tensor '{name}' offset")
            if any(d == 0 for d in ne):
                self._fail(f"tensor '{name}': dimension of size 0 in ne={ne}", at)
            if name in self.tensors:
                self._fail(f"tensor '{name}' appears twice", at)
            if offset % align:
                self._fail(f"tensor '{name}': data offset {offset} is not a multiple of the alignment {align}", at)
            info = TensorInfo(name, ne, ttype, offset, at)
            self.tensors[name] = info
            infos.append(info)

        self.data_start = -(-self._pos // align) * align
        for info in infos:
            n = info.n_elements
            # No ggml type packs more than 8 elements in a byte; more elements than that cannot be stored.
            if n > 8 * self.size:
                raise GGUFError(f"{self.path}: tensor '{info.name}' (info at byte {info.info_offset}): "
                                f"ne={list(info.ne)} has more elements than the file could hold")
            if info.ggml_type in TENSOR_TYPES:
                nbytes = n * TENSOR_TYPES[info.ggml_type][1]
                end = self.data_start + info.offset + nbytes
                if end > self.size:
                    raise GGUFError(f"{self.path}: tensor '{info.name}' (info at byte {info.info_offset}): data "
                                    f"[{self.data_start + info.offset}, {end}) runs past the end of the file "
                                    f"({self.size} bytes)")

    def tensor(self, name):
        """Decode tensor `name` to a float32 numpy array in numpy shape (ne reversed)."""
        if name not in self.tensors:
            raise GGUFError(f"{self.path}: no tensor named '{name}'")
        info = self.tensors[name]
        if info.ggml_type not in TENSOR_TYPES:
            raise GGUFError(f"{self.path}: tensor '{name}' has ggml type {info.ggml_type}; this reader decodes only "
                            f"F32 (0), F16 (1) and BF16 (30) — dequantize the model first")
        tname, esize = TENSOR_TYPES[info.ggml_type]
        start = self.data_start + info.offset
        n = info.n_elements
        if tname == "F32":
            flat = np.frombuffer(self._buf, dtype="<f4", count=n, offset=start).astype(np.float32)
        elif tname == "F16":
            flat = np.frombuffer(self._buf, dtype="<f2", count=n, offset=start).astype(np.float32)
        else:  # BF16 is the top half of an IEEE float32
            raw = np.frombuffer(self._buf, dtype="<u2", count=n, offset=start).astype(np.uint32) << 16
            flat = raw.view(np.float32)
        return flat.reshape(info.shape)

    def close(self):
        self._buf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
