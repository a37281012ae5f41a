# Signed commands without the CBOR codec (docs/protocol.md "Signed commands").
#
#   split(p) -> (cmd, keyid, sig) as bytes | None     a command message [type, cmd, keyid, sig]
#   fields(cmd) -> (type, ecu_id bytes, nonce) | None  the signed bytes [1, type, ecu_id, nonce]
#   check(keys, p, ecu_id, nonce, verify) -> 0 | -1     the device's checks of a command
#       (key() and after() are its two halves around the signature check, for a caller that
#       verifies in slices)
#       keys: trusted command public keys; p: the payload; nonce: the current command nonce;
#       verify: ed25519.verify(pub, msg, sig) (the device's, loaded for the call). -1: p is not a
#       signed command's shape (the full parser answers it: E_CMD_AUTH for the unsigned [type]).
#       0: authentic and fresh. Else ProtocolError, in this order (docs/protocol.md 5.1):
#     1 keyid names a trusted command key (E_CMD_AUTH, 1) and sig is its ed25519 signature of
#       exactly cmd (E_CMD_AUTH, 2): one verification, nothing of cmd read before it;
#     2 cmd is [1, type, ecu_id, nonce] in the profile (E_BAD_MESSAGE, 0xFF);
#     3 cmd's type is p's (E_CMD_TARGET, 1), its ecu_id this ECU's (E_CMD_TARGET, 2);
#     4 its nonce is the current command nonce (E_CMD_REPLAY).
#
# The device checks commands with this module and ed25519.py alone (device/commands.py loads
# both for a command and drops them again), so a command needs neither the codec nor auth.py
# (BEGIN's checks) in the heap. The host's messages.decode_command wraps fields(). The CBOR
# profile is canonical (shortest heads, definite lengths), so each value has exactly one
# encoding and these byte-level checks accept exactly what the profile-checked parsers accept
# (tests/protocol/test_command.py checks both ways). None means "not this shape": split() leaves
# the error code to the full parser (wire.parse); a signed cmd that fields() refuses is
# E_BAD_MESSAGE.
import hashlib

from otalink.protocol.errors import ProtocolError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# protocol/codes.py / messages.py values (private copies, tests/protocol/test_wire.py checks)
_E_BAD_MESSAGE = const(10)
_E_CMD_AUTH = const(70)
_E_CMD_REPLAY = const(71)
_E_CMD_TARGET = const(72)
_MSG_ACTIVATE = const(0xA)
_MSG_ABORT = const(0xE)
_CMD_FMT = const(1)
_MAX_CMD = const(96)
_MAX_ID = const(32)
_NONCE_LEN = const(16)


def split(p):
    # 84 t | cmd: 41..57 or 58 18..60 | keyid: 48 + 8 | sig: 58 40 + 64 | end
    end = len(p)
    if end < 78 or p[0] != 0x84 or p[1] < _MSG_ACTIVATE or p[1] > _MSG_ABORT:
        return None
    h = p[2]
    if 0x41 <= h <= 0x57:
        s = 3
        n = h - 0x40
    elif h == 0x58 and 24 <= p[3] <= _MAX_CMD:
        s = 4
        n = p[3]
    else:
        return None
    k = s + n
    if k + 75 != end or p[k] != 0x48 or p[k + 9] != 0x58 or p[k + 10] != 0x40:
        return None
    return bytes(p[s:k]), bytes(p[k + 1 : k + 9]), bytes(p[k + 11 : end])


def fields(c):
    # 84 01 t | ecu_id: 61..77 or 78 18..20 | nonce: 50 + 16 | end
    end = len(c)
    if end < 22 or c[0] != 0x84 or c[1] != _CMD_FMT:
        return None
    t = c[2]
    if t < _MSG_ACTIVATE or t > _MSG_ABORT:
        return None
    h = c[3]
    if 0x61 <= h <= 0x77:
        s = 4
        n = h - 0x60
    elif h == 0x78 and end > 4 and 24 <= c[4] <= _MAX_ID:
        s = 5
        n = c[4]
    else:
        return None
    e = s + n
    if e + 1 + _NONCE_LEN != end or c[e] != 0x40 | _NONCE_LEN or not _utf8(c, s, e):
        return None
    return t, bytes(c[s:e]), bytes(c[e + 1 : end])


def _utf8(b, i, n):
    # b[i:n] is UTF-8 as RFC 3629 defines it, exactly what the profile takes for text (no
    # overlong forms, no surrogates, nothing over U+10FFFF: docs/protocol.md section 3). A few
    # bytes, checked by hand: str() on MicroPython lets overlong forms through.
    while i < n:
        c = b[i]
        i += 1
        if c < 0x80:
            continue
        if c < 0xC2 or c > 0xF4:
            return False
        k = 1 if c < 0xE0 else 2 if c < 0xF0 else 3  # continuation bytes
        lo = 0xA0 if c == 0xE0 else 0x90 if c == 0xF0 else 0x80
        hi = 0x9F if c == 0xED else 0x8F if c == 0xF4 else 0xBF
        if i + k > n or b[i] < lo or b[i] > hi:
            return False
        j = i + 1
        while j < i + k:
            if b[j] < 0x80 or b[j] > 0xBF:
                return False
            j += 1
        i += k
    return True


def check(keys, p, ecu_id, nonce, verify):
    k = key(keys, p)
    if k is None:
        return -1
    if not verify(k[0], k[1], k[2]):
        raise ProtocolError(_E_CMD_AUTH, 2)
    return after(p, k[1], ecu_id, nonce)


def key(keys, p):
    # check()'s first steps: None (not a signed command's shape) | (pub, cmd, sig) to verify;
    # E_CMD_AUTH (1) when the keyid names no trusted key (the device runs its sliced ed25519
    # between key() and after())
    parts = split(p)
    if parts is None:
        return None
    cmd, kid, sig = parts
    pub = None
    for k in keys:
        if hashlib.sha256(k).digest()[:8] == kid:
            pub = k
    if pub is None:
        raise ProtocolError(_E_CMD_AUTH, 1)  # also: no command key provisioned at all
    return pub, cmd, sig


def after(p, cmd, ecu_id, nonce):
    # check()'s steps after the signature verified: layout, target, nonce; 0 when all pass
    f = fields(cmd)
    if f is None:
        raise ProtocolError(_E_BAD_MESSAGE, 0xFF)
    if f[0] != p[1]:
        raise ProtocolError(_E_CMD_TARGET, 1)
    if f[1] != ecu_id.encode():
        raise ProtocolError(_E_CMD_TARGET, 2)
    if f[2] != nonce:
        raise ProtocolError(_E_CMD_REPLAY)
    return 0
