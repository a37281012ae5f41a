# Run under MicroPython by test_ed25519_pynacl.py: one line per case in the file argv[1],
#   "v <pub> <msg> <sig>"  -> prints "1"/"0" (verify)
#   "s <seed> <msg>"       -> prints "<pub> <sig>" (sign)
# all fields hex ("-" for empty). One process checks a whole batch (start-up is paid once).
import sys
from binascii import hexlify, unhexlify

from otalink.device import ed25519


def _b(s):
    return b"" if s == "-" else unhexlify(s)


with open(sys.argv[1]) as f:
    for line in f:
        p = line.split()
        if not p:
            continue
        if p[0] == "v":
            print("1" if ed25519.verify(_b(p[1]), _b(p[2]), _b(p[3])) else "0")
        else:
            k = ed25519.SigningKey(_b(p[1]))
            print(hexlify(k.public).decode(), hexlify(k.sign(_b(p[2]))).decode())
