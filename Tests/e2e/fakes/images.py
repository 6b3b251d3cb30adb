"""Image files for the fakes, in the standard library only: solid PNGs (opaque, or with a transparent
band), lossless WebPs and baseline JPEGs of one colour, written as the formats' specifications lay them
out (PNG: RFC 2083 / W3C PNG; WebP: RFC 9649's VP8L; JPEG: ITU T.81 baseline), and the header facts and
transparent pixels a provider reads from what it is sent.
"""
import math
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---- image writers ------------------------------------------------------------------------------------

def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def solid_png(width, height, rgb, transparent_margin=0):
    """An 8-bit PNG of one colour: RGB, or with `transparent_margin` RGBA whose outer band of that many
    pixels is fully transparent."""
    compressor = zlib.compressobj(6)
    if not transparent_margin:
        row = b"\x00" + bytes(rgb) * width
        data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
        colour_type = 2
    else:
        m = min(transparent_margin, width // 2, height // 2)
        clear, solid = b"\x00\x00\x00\x00", bytes(rgb) + b"\xff"
        edge = b"\x00" + clear * width
        middle = b"\x00" + clear * m + solid * (width - 2 * m) + clear * m
        data = b"".join(compressor.compress(edge if y < m or y >= height - m else middle)
                        for y in range(height)) + compressor.flush()
        colour_type = 6
    return (PNG_SIGNATURE + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))
            + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b""))


class _LsbBits:
    """An LSB-first bit writer, as VP8L packs its bits."""

    def __init__(self):
        self.value, self.count = 0, 0

    def put(self, value, bits):
        self.value |= (value & ((1 << bits) - 1)) << self.count
        self.count += bits

    def bytes(self):
        return self.value.to_bytes((self.count + 7) // 8, "little")


def solid_webp(width, height, rgb):
    """A lossless WebP (VP8L) of one colour: no transforms, no colour cache, five one-symbol simple prefix
    codes (green, red, blue, alpha, distance), so each pixel takes zero bits."""
    r, g, b = rgb
    bits = _LsbBits()
    bits.put(0x2F, 8)
    bits.put(width - 1, 14)
    bits.put(height - 1, 14)
    bits.put(0, 1)   # alpha_is_used
    bits.put(0, 3)   # version
    bits.put(0, 1)   # no transform
    bits.put(0, 1)   # no colour cache
    bits.put(0, 1)   # no meta prefix codes
    for symbol in (g, r, b, 255, 0):
        bits.put(1, 1)   # simple code
        bits.put(0, 1)   # one symbol
        if symbol < 2:
            bits.put(0, 1)
            bits.put(symbol, 1)
        else:
            bits.put(1, 1)
            bits.put(symbol, 8)
    data = bits.bytes()
    chunk = b"VP8L" + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


# The DC table of ITU T.81 Annex K.3 (luminance DC); the AC table only needs EOB, plus one more symbol
# so that no code is all ones.
_JPEG_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_JPEG_DC_VALUES = tuple(range(12))
_JPEG_AC_BITS = (1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
_JPEG_AC_VALUES = (0x00, 0x01)


def _huffman_codes(bits, values):
    """Canonical Huffman codes (symbol -> bit string) from a DHT's counts per length and its symbols."""
    codes, code, k = {}, 0, 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[k]] = format(code, f"0{length}b")
            code += 1
            k += 1
        code <<= 1
    return codes


def solid_jpeg(width, height, rgb):
    """A baseline JPEG of one colour: 4:4:4 YCbCr, quantisation all ones, each 8x8 block its DC term only
    (the first block's DC, then differences of 0 and an end-of-block)."""
    r, g, b = rgb
    samples = (0.299 * r + 0.587 * g + 0.114 * b,
               128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
               128 + 0.5 * r - 0.418688 * g - 0.081312 * b)
    dc_codes, ac_codes = _huffman_codes(_JPEG_DC_BITS, _JPEG_DC_VALUES), _huffman_codes(_JPEG_AC_BITS, _JPEG_AC_VALUES)

    def dc_bits(diff):
        size = abs(diff).bit_length()
        if size == 0:
            return dc_codes[0]
        value = diff if diff > 0 else diff + (1 << size) - 1
        return dc_codes[size] + format(value, f"0{size}b")

    eob = ac_codes[0x00]
    first = "".join(dc_bits(max(-1023, min(1023, round(8 * (s - 128))))) + eob for s in samples)
    rest = (dc_codes[0] + eob) * 3
    blocks = math.ceil(width / 8) * math.ceil(height / 8)
    stream = first + rest * (blocks - 1)
    stream += "1" * (-len(stream) % 8)
    scan = int(stream, 2).to_bytes(len(stream) // 8, "big").replace(b"\xff", b"\xff\x00")

    def segment(marker, payload):
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload

    def dht(table_class, bits, values):
        return bytes([table_class << 4]) + bytes(bits) + bytes(values)

    return (b"\xff\xd8"
            + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
            + segment(0xDB, b"\x00" + b"\x01" * 64)
            + segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00")
            + segment(0xC4, dht(0, _JPEG_DC_BITS, _JPEG_DC_VALUES) + dht(1, _JPEG_AC_BITS, _JPEG_AC_VALUES))
            + segment(0xDA, b"\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00")
            + scan + b"\xff\xd9")


def make_image(fmt, width, height, rgb, transparent=False):
    """(bytes, content type, extension) of a solid image in `fmt` (png, jpeg or webp)."""
    if fmt == "jpeg":
        return solid_jpeg(width, height, rgb), "image/jpeg", "jpeg"
    if fmt == "webp":
        return solid_webp(width, height, rgb), "image/webp", "webp"
    margin = max(1, min(width, height) // 8) if transparent else 0
    return solid_png(width, height, rgb, margin), "image/png", "png"


# ---- image readers ------------------------------------------------------------------------------------

def sniff_format(data):
    """"png", "jpeg", "webp", "gif" or None, from the file's first bytes."""
    if data[:8] == PNG_SIGNATURE:
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def png_info(data):
    """The header facts of a PNG — {"width", "height", "bit_depth", "colour_type", "interlace", "has_trns",
    "trns", "plte", "idat"} — or None when it is not a well-formed PNG (signature, IHDR first, chunks
    complete, at least one IDAT)."""
    if data[:8] != PNG_SIGNATURE:
        return None
    pos, info, idat = 8, None, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) < length or pos + 12 + length > len(data):
            return None
        if info is None:
            if kind != b"IHDR" or length != 13:
                return None
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if width == 0 or height == 0 or colour_type not in (0, 2, 3, 4, 6):
                return None
            info = {"width": width, "height": height, "bit_depth": depth, "colour_type": colour_type,
                    "interlace": interlace, "has_trns": False, "trns": b"", "plte": b""}
        elif kind == b"tRNS":
            info["has_trns"], info["trns"] = True, body
        elif kind == b"PLTE":
            info["plte"] = body
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
        if kind == b"IEND":
            break
    if info is None or not idat:
        return None
    info["idat"] = b"".join(idat)
    return info


def png_has_alpha(info):
    return info["colour_type"] in (4, 6) or info["has_trns"]


def png_mode(info):
    """The PIL-style mode name of a PNG (what the real API's messages name: RGBA, LA, L, RGB, P)."""
    return {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}[info["colour_type"]]


def image_dimensions(data):
    """(width, height) of a PNG, JPEG or WebP from its headers, or None."""
    try:
        fmt = sniff_format(data)
        if fmt == "png":
            info = png_info(data)
            return (info["width"], info["height"]) if info else None
        if fmt == "webp":
            kind, body = data[12:16], data[20:]
            if kind == b"VP8L" and body[:1] == b"\x2f":
                v = int.from_bytes(body[1:5], "little")
                return (v & 0x3FFF) + 1, ((v >> 14) & 0x3FFF) + 1
            if kind == b"VP8X":
                return 1 + int.from_bytes(body[4:7], "little"), 1 + int.from_bytes(body[7:10], "little")
            if kind == b"VP8 " and body[3:6] == b"\x9d\x01\x2a":
                return struct.unpack("<H", body[6:8])[0] & 0x3FFF, struct.unpack("<H", body[8:10])[0] & 0x3FFF
            return None
        if fmt == "jpeg":
            pos = 2
            while pos + 4 <= len(data):
                if data[pos] != 0xFF:
                    return None
                marker = data[pos + 1]
                if marker == 0xFF:
                    pos += 1
                    continue
                if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
                    pos += 2
                    continue
                length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
                if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                    height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
                    return (width, height) if width and height else None
                if marker in (0xD9, 0xDA):
                    return None
                pos += 2 + length
    except (struct.error, IndexError):
        pass
    return None


_MASKS = {}


def _masks(n):
    masks = _MASKS.get(n)
    if masks is None:
        masks = _MASKS[n] = (int.from_bytes(b"\x7f" * n, "big"), int.from_bytes(b"\x80" * n, "big"))
    return masks


def _add_bytes(a, b):
    """Bytewise (a + b) mod 256, all bytes at once (the Up filter)."""
    n = len(a)
    if n == 0:
        return b""
    low, high = _masks(n)
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    return (((x & low) + (y & low)) ^ ((x ^ y) & high)).to_bytes(n, "big")


def _unfilter(raw, height, stride, bpp):
    """The rows of a non-interlaced PNG image from its inflated data, undoing filters 0 to 4."""
    if len(raw) < height * (stride + 1):
        raise ValueError("the image data is shorter than the image")
    rows, previous, pos = [], bytes(stride), 0
    for _ in range(height):
        kind, line = raw[pos], raw[pos + 1:pos + 1 + stride]
        pos += 1 + stride
        if kind == 0:
            current = bytes(line)
        elif kind == 2:
            current = _add_bytes(line, previous)
        elif kind == 1:
            cur = bytearray(line)
            for i in range(bpp, stride):
                cur[i] = (cur[i] + cur[i - bpp]) & 0xFF
            current = bytes(cur)
        elif kind == 3:
            cur = bytearray(line)
            for i in range(stride):
                left = cur[i - bpp] if i >= bpp else 0
                cur[i] = (cur[i] + ((left + previous[i]) >> 1)) & 0xFF
            current = bytes(cur)
        elif kind == 4:
            cur = bytearray(line)
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b = previous[i]
                c = previous[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else (b if pb <= pc else c))) & 0xFF
            current = bytes(cur)
        else:
            raise ValueError(f"bad PNG filter type {kind}")
        rows.append(current)
        previous = current
    return rows


def count_transparent(data, info=None):
    """How many pixels of a PNG are fully transparent (alpha 0, or the tRNS colour / palette entries of
    alpha 0), as (transparent, total). Reads bit depth 8 (all colour types) and 16 (grey, RGB, grey+alpha,
    RGBA), non-interlaced, every filter type; None for other kinds. Raises ValueError on broken data."""
    info = info or png_info(data)
    if info is None:
        raise ValueError("not a PNG")
    width, height, depth, ct = info["width"], info["height"], info["bit_depth"], info["colour_type"]
    total = width * height
    if info["interlace"] != 0 or depth not in (8, 16) or (ct == 3 and depth != 8):
        return None
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ct]
    bpp = channels * depth // 8
    try:
        raw = zlib.decompress(info["idat"])
    except zlib.error as error:
        raise ValueError(f"the image data does not inflate: {error}") from None
    rows = _unfilter(raw, height, width * bpp, bpp)
    if ct in (4, 6):
        if depth == 8:
            return sum(row[channels - 1::channels].count(0) for row in rows), total
        hi, lo = 2 * channels - 2, 2 * channels - 1
        return sum(sum(1 for h, l in zip(row[hi::bpp], row[lo::bpp]) if h == 0 and l == 0) for row in rows), total
    trns = info["trns"]
    if not info["has_trns"]:
        return 0, total
    if ct == 3:
        clear = [index for index, alpha in enumerate(trns) if alpha == 0]
        return sum(row.count(index) for row in rows for index in clear), total
    key = trns[:2] if ct == 0 else trns[:6]
    if depth == 8:
        key = bytes(key[1::2])
    if len(key) != bpp:
        return 0, total
    if bpp == 1:
        return sum(row.count(key[0]) for row in rows), total
    return sum(sum(1 for i in range(0, len(row), bpp) if row[i:i + bpp] == key) for row in rows), total
