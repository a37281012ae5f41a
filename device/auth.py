# Authenticity on the ECU (Uptane partial verification) and signed version reports.
#
# Public API (stable; other modules and tests rely on it):
#   AuthError(code, detail=0)                 .code is an E_* integer from protocol/codes.py
#   keyid(pub32) -> bytes(8)                   SHA-256(pub)[:8], as in docs/protocol.md
#   Trust(keys, threshold)                     trusted Director instruction keys (32-byte pubs)
#   Trust.verify(instr, sigs) -> None          threshold of valid signatures over the exact bytes
#   parse_instruction(instr, fields=None) -> Instruction
#                                              strict shape check (E_BAD_INSTRUCTION); fields: the
#                                              result of messages.decode_instruction(instr) made
#                                              earlier (or the ProtocolError it raised)
#   check_begin(trust, instr, sigs, ecu_id, hw_id, image_len, sha256, slot_size,
#               release_floor, trusted_time, fields=None) -> Instruction
#                                              every BEGIN check in a fixed order, first failure
#                                              raised as AuthError with its own code
#   Reporter(seed32)                           the ECU's own report key
#   Reporter.public                            32-byte public key (registered with the host)
#   Reporter.sign(body) -> bytes(64)           signature over the exact body bytes
#
# Check order in check_begin (each with its own code, docs/device.md "Instruction checks"):
#   1 signatures: >= threshold valid signatures by distinct trusted keys, else E_KEY_UNKNOWN when
#     no signature names a trusted key, E_SIG_INVALID otherwise (verify before parsing: nothing
#     unauthenticated is interpreted beyond the CBOR shape);
#   2 shape E_BAD_INSTRUCTION; 3 ecu id E_ECU_MISMATCH; 4 hw id E_HW_MISMATCH;
#   5 expiry E_EXPIRED (expires < max(trusted_time, issued)); 6 release counter E_ROLLBACK
#     (must be > release_floor); 7 image_len > slot_size E_IMAGE_TOO_LARGE;
#   8 BEGIN image_len != instruction's E_LENGTH_MISMATCH; 9 BEGIN sha256 != E_HASH_MISMATCH.
# Change: `fields` (optional, last) lets the session decode the instruction while the message
# layer is loaded for BEGIN and drop that layer before this module and ed25519 are imported (the
# two never share the heap, see device/session.py); the check order is unchanged. Without
# `fields` this module imports protocol/wire (messages' parsers) itself, only when it parses.
import hashlib

from otalink.device import ed25519
from otalink.protocol import codes
from otalink.protocol.errors import ProtocolError

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


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
_I_TARGET = const(9)
_I_KIND = const(10)


class AuthError(Exception):
    def __init__(self, code, detail=0):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


def keyid(pub):
    return hashlib.sha256(pub).digest()[:8]


class Trust:
    """Trusted Director instruction keys and how many must sign (threshold)."""

    def __init__(self, keys, threshold):
        if not keys or threshold < 1 or threshold > len(keys):
            raise ValueError("threshold")
        self.threshold = threshold
        # keyid -> public key; computed once at start-up
        self._keys = {}
        for k in keys:
            self._keys[keyid(bytes(k))] = bytes(k)

    def verify(self, instr, sigs):
        if not isinstance(sigs, list) or len(sigs) > _MAX_SIGS:
            raise AuthError(codes.E_BAD_MESSAGE, 1)
        good = []  # keyids with a valid signature (each trusted key counts once)
        known = 0
        for entry in sigs:
            if not isinstance(entry, list) or len(entry) != 2:
                raise AuthError(codes.E_BAD_MESSAGE, 2)
            kid = bytes(entry[0])
            sig = entry[1]
            if len(kid) != 8 or not isinstance(sig, (bytes, bytearray, memoryview)):
                raise AuthError(codes.E_BAD_MESSAGE, 3)
            pub = self._keys.get(kid)
            if pub is None:
                continue  # unknown key: skipped without spending a verification on it
            known += 1
            if kid in good:
                continue
            if len(sig) == 64 and ed25519.verify(pub, instr, sig):
                good.append(kid)
                if len(good) >= self.threshold:
                    return
        if not known:
            raise AuthError(codes.E_KEY_UNKNOWN)
        raise AuthError(codes.E_SIG_INVALID, len(good))


class Instruction:
    # The Director's install instruction, docs/protocol.md "Install instruction".
    def __init__(self, f):
        self.ecu_id = f[_I_ECU_ID]
        self.hw_id = f[_I_HW_ID]
        self.version = f[_I_VERSION]
        self.release_counter = f[_I_RELEASE]
        self.image_len = f[_I_IMAGE_LEN]
        self.sha256 = bytes(f[_I_SHA256])
        self.issued = f[_I_ISSUED]
        self.expires = f[_I_EXPIRES]
        self.target = f[_I_TARGET]
        self.kind = f[_I_KIND]


def parse_instruction(instr, fields=None):
    # Shape rules live in protocol/wire.py (one definition for host and device).
    f = fields
    if f is None:
        from otalink.protocol import wire

        try:
            f = wire.decode_instruction(instr)
        except ProtocolError as e:
            f = e
    if isinstance(f, ProtocolError):
        raise AuthError(codes.E_BAD_INSTRUCTION, f.detail)
    ins = Instruction(f)
    if ins.expires < ins.issued or ins.image_len == 0:
        raise AuthError(codes.E_BAD_INSTRUCTION, _I_EXPIRES)
    return ins


def check_begin(
    trust,
    instr,
    sigs,
    ecu_id,
    hw_id,
    image_len,
    sha256,
    slot_size,
    release_floor,
    trusted_time,
    fields=None,
):
    trust.verify(instr, sigs)
    ins = parse_instruction(instr, fields)
    if ins.ecu_id != ecu_id:
        raise AuthError(codes.E_ECU_MISMATCH)
    if ins.hw_id != hw_id:
        raise AuthError(codes.E_HW_MISMATCH)
    now = trusted_time if trusted_time > ins.issued else ins.issued
    if ins.expires < now:
        raise AuthError(codes.E_EXPIRED)
    if ins.release_counter <= release_floor:
        raise AuthError(codes.E_ROLLBACK)
    if ins.image_len > slot_size:
        raise AuthError(codes.E_IMAGE_TOO_LARGE)
    if image_len != ins.image_len:
        raise AuthError(codes.E_LENGTH_MISMATCH)
    if bytes(sha256) != ins.sha256:
        raise AuthError(codes.E_HASH_MISMATCH)
    return ins


class Reporter:
    """The ECU's own ed25519 key: signs INFO/STATUS bodies so the gateway cannot forge them."""

    def __init__(self, seed):
        self._key = ed25519.SigningKey(seed)
        self.public = self._key.public

    def sign(self, body):
        return self._key.sign(body)
