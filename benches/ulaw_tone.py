"""Writes 2 s of a 440 Hz tone as raw G.711 u-law (what the load scripts'
SIPp callers stream, looped): benches/ulaw_tone.py OUT_FILE."""
import math
import sys


def ulaw(x):
    sign = 0x80 if x < 0 else 0
    x = min(abs(x), 32635) + 132
    exp = max(0, x.bit_length() - 8)
    mant = (x >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF


with open(sys.argv[1], "wb") as f:
    f.write(bytes(ulaw(int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(16000)))
