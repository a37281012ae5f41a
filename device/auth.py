# Authenticity on the ECU (Uptane partial verification): the BEGIN checks.
#
#   check(keys, threshold, instr, sigs, ecu_id, hw_id, image_len, sha256, slot_size,
#         release_floor, trusted_time, fields) -> (issued, version, release_counter, kind,
#         base_sha256 or None: the delta base a format-2 instruction binds)
#   check_g(...)  the same as a generator (ed25519 sliced: it yields between slices, so the agent
#                 never blocks the asyncio loop for a whole verification); returns the tuple
#       keys: trusted Director public keys (32 bytes each); fields: the instruction decoded by
#       wire.decode_instruction(instr) earlier (or the ProtocolError it raised): the session
#       decodes while the codec is loaded and drops it before this module and ed25519(v) load (the
#       two never share the heap, see device/session.py). Every failure raises
#       ProtocolError(code, detail) with its own code, in this order (docs/device.md
#       "Instruction checks"):
#   1 signatures: >= threshold valid signatures by distinct trusted keys (keyid = SHA-256(pub)[:8]),
#     else E_KEY_UNKNOWN when no signature names a trusted key, E_SIG_INVALID otherwise (verify
#     before interpreting: nothing unauthenticated is used beyond the CBOR shape);
#   2 shape E_BAD_INSTRUCTION; 3 ecu id E_ECU_MISMATCH; 4 hw id E_HW_MISMATCH;
#   5 expiry E_EXPIRED (expires < max(trusted_time, issued)); 6 release counter E_ROLLBACK
#     (must be > release_floor); 7 image_len > slot_size E_IMAGE_TOO_LARGE;
#   8 BEGIN image_len != instruction's E_LENGTH_MISMATCH; 9 BEGIN sha256 != E_HASH_MISMATCH.
# One function and no classes: the module is loaded per BEGIN and dropped again, and on the
# unix port its code and names sit in the GC heap while it is loaded.
import hashlib

from otalink.device import ed25519, ed25519v
from otalink.protocol.errors import ProtocolError

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


# protocol/codes.py values this module uses, as private consts (folded by the compiler; codes.py
# itself is ~100 names the heap would keep; tests/protocol/test_wire.py checks the copies)
_E_BAD_INSTRUCTION = const(39)
_E_BAD_MESSAGE = const(10)
_E_ECU_MISMATCH = const(32)
_E_EXPIRED = const(35)
_E_HASH_MISMATCH = const(37)
_E_HW_MISMATCH = const(33)
_E_IMAGE_TOO_LARGE = const(36)
_E_KEY_UNKNOWN = const(31)
_E_LENGTH_MISMATCH = const(38)
_E_ROLLBACK = const(34)
_E_SIG_INVALID = const(30)

_MAX_SIGS = const(4)
# Install instruction field indices: the same numbers as messages.I_* (tests/device_session checks)
_I_ECU_ID = const(1)
_I_HW_ID = const(2)
_I_VERSION = const(3)
_I_RELEASE = const(4)
_I_IMAGE_LEN = const(5)
_I_SHA256 = const(6)
_I_ISSUED = const(7)
_I_EXPIRES = const(8)
_I_KIND = const(10)
_I_BASE_SHA256 = const(11)


def _sigs(keys, threshold, instr, sigs):
    if not isinstance(sigs, list) or len(sigs) > _MAX_SIGS:
        raise ProtocolError(_E_BAD_MESSAGE, 1)
    good = []  # keyids with a valid signature (each trusted key counts once)
    known = 0
    for entry in sigs:
        if not isinstance(entry, list) or len(entry) != 2:
            raise ProtocolError(_E_BAD_MESSAGE, 2)
        kid = bytes(entry[0])
        sig = entry[1]
        if len(kid) != 8 or not isinstance(sig, (bytes, bytearray, memoryview)):
            raise ProtocolError(_E_BAD_MESSAGE, 3)
        pub = None
        for k in keys:
            if hashlib.sha256(k).digest()[:8] == kid:
                pub = k
        if pub is None:
            continue  # unknown key: skipped without spending a verification on it
        known += 1
        if kid in good:
            continue
        if len(sig) == 64 and (yield from ed25519v.verify_g(pub, instr, sig)):
            good.append(kid)
            if len(good) >= threshold:
                return
    if not known:
        raise ProtocolError(_E_KEY_UNKNOWN)
    raise ProtocolError(_E_SIG_INVALID, len(good))


def check(keys, threshold, instr, sigs, ecu_id, hw_id, image_len, sha256, slot_size, floor, now,
          f):  # fmt: skip
    return ed25519.run(check_g(keys, threshold, instr, sigs, ecu_id, hw_id, image_len, sha256,
                               slot_size, floor, now, f))  # fmt: skip


def check_g(keys, threshold, instr, sigs, ecu_id, hw_id, image_len, sha256, slot_size, floor,
            now, f):  # fmt: skip
    if not keys or threshold < 1 or threshold > len(keys):
        raise ValueError("threshold")
    yield from _sigs(keys, threshold, instr, sigs)
    if isinstance(f, ProtocolError):
        raise ProtocolError(_E_BAD_INSTRUCTION, f.detail)
    issued = f[_I_ISSUED]
    if f[_I_EXPIRES] < issued or f[_I_IMAGE_LEN] == 0:
        raise ProtocolError(_E_BAD_INSTRUCTION, _I_EXPIRES)
    if f[_I_ECU_ID] != ecu_id:
        raise ProtocolError(_E_ECU_MISMATCH)
    if f[_I_HW_ID] != hw_id:
        raise ProtocolError(_E_HW_MISMATCH)
    if f[_I_EXPIRES] < (now if now > issued else issued):
        raise ProtocolError(_E_EXPIRED)
    if f[_I_RELEASE] <= floor:
        raise ProtocolError(_E_ROLLBACK)
    if f[_I_IMAGE_LEN] > slot_size:
        raise ProtocolError(_E_IMAGE_TOO_LARGE)
    if image_len != f[_I_IMAGE_LEN]:
        raise ProtocolError(_E_LENGTH_MISMATCH)
    if bytes(sha256) != bytes(f[_I_SHA256]):
        raise ProtocolError(_E_HASH_MISMATCH)
    return (issued, f[_I_VERSION], f[_I_RELEASE], f[_I_KIND],
            bytes(f[_I_BASE_SHA256]) if len(f) > _I_BASE_SHA256 else None)  # fmt: skip
