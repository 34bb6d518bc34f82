"""A SHA-256 whose running state can be saved and resumed in another process.

An upload session keeps the state of its hash beside its bytes, so whichever
process (gunicorn worker, a restarted server, another host on shared storage)
takes the next chunk continues the hash instead of reading the upload back, as
distribution keeps ``hashstates/`` with its uploads.  hashlib cannot export its
state, so this drives the same OpenSSL that hashlib uses (``SHA256_Init``,
``SHA256_Update``, ``SHA256_Final``) through ctypes; its context is plain data:
the eight words, the length and the pending partial block.

The saved form is Go's ``crypto/sha256`` ``MarshalBinary`` layout (``"sha\\x03"``,
the eight words big-endian, the 64-byte block buffer, the length in bytes as a
big-endian uint64), which depends on no platform.  Without a loadable libcrypto
``AVAILABLE`` is False and callers re-hash what they stored instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct

MAGIC = b"sha\x03"
STATE_SIZE = len(MAGIC) + 32 + 64 + 8


class _Ctx(ctypes.Structure):
    """OpenSSL's SHA256_CTX (openssl/sha.h; unchanged since 0.9.8)."""

    _fields_ = [
        ("h", ctypes.c_uint32 * 8),
        ("Nl", ctypes.c_uint32),
        ("Nh", ctypes.c_uint32),
        ("data", ctypes.c_uint8 * 64),
        ("num", ctypes.c_uint),
        ("md_len", ctypes.c_uint),
    ]


def _load() -> ctypes.CDLL | None:
    import _hashlib  # its libcrypto is the one hashlib hashes with

    names = [ctypes.util.find_library("crypto"), "libcrypto.so.3", _hashlib.__file__]
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            for fn in (lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final):
                fn.restype = ctypes.c_int
            lib.SHA256_Init.argtypes = [ctypes.POINTER(_Ctx)]
            lib.SHA256_Update.argtypes = [ctypes.POINTER(_Ctx), ctypes.c_char_p, ctypes.c_size_t]
            lib.SHA256_Final.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Ctx)]
            return lib
        except (OSError, AttributeError):
            continue
    return None


_LIB = _load()
AVAILABLE = _LIB is not None


class Sha256:
    """hashlib's sha256 interface (update, hexdigest) plus :meth:`state` and :meth:`resume`."""

    name = "sha256"

    def __init__(self) -> None:
        if _LIB is None:
            raise RuntimeError("no libcrypto with SHA256_* to keep a resumable hash")
        self._ctx = _Ctx()
        _LIB.SHA256_Init(ctypes.byref(self._ctx))

    def update(self, data: bytes) -> None:
        assert _LIB is not None
        _LIB.SHA256_Update(ctypes.byref(self._ctx), data, len(data))

    def copy(self) -> Sha256:
        other = Sha256.__new__(Sha256)
        other._ctx = _Ctx.from_buffer_copy(self._ctx)
        return other

    def digest(self) -> bytes:
        assert _LIB is not None
        out = ctypes.create_string_buffer(32)
        ctx = _Ctx.from_buffer_copy(self._ctx)  # Final consumes the context: hash on
        _LIB.SHA256_Final(out, ctypes.byref(ctx))
        return out.raw

    def hexdigest(self) -> str:
        return self.digest().hex()

    @property
    def length(self) -> int:
        """The number of bytes hashed so far."""
        bits: int = (self._ctx.Nh << 32) | self._ctx.Nl
        return bits // 8

    def state(self) -> bytes:
        """The running state, resumable by :meth:`resume` in any process."""
        pending = bytes(self._ctx.data)[: self._ctx.num]
        return (
            MAGIC
            + struct.pack(">8I", *self._ctx.h)
            + pending.ljust(64, b"\0")
            + struct.pack(">Q", self.length)
        )

    @classmethod
    def resume(cls, state: bytes) -> Sha256:
        """The hash whose :meth:`state` was ``state``; ValueError if it is not one."""
        if len(state) != STATE_SIZE or not state.startswith(MAGIC):
            raise ValueError("not a saved sha256 state")
        h = struct.unpack(">8I", state[4:36])
        (length,) = struct.unpack(">Q", state[100:108])
        out = cls()
        ctx = out._ctx
        ctx.h[:] = h
        bits = length * 8
        ctx.Nl, ctx.Nh = bits & 0xFFFFFFFF, bits >> 32
        ctx.num = length % 64
        ctypes.memmove(ctx.data, state[36:100], 64)
        return out
