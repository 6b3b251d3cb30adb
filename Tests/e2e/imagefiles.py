"""Image files for the black-box tests, built in pure Python (zlib + struct; there is no PIL here).

Writers: `png` (8-bit RGB or grayscale, any size, pixels from a function), `stripes_png`, `mask_png`
(white = repaint, black = keep), `bomb_png` (an IHDR claiming 20000×20000 over a few bytes of data),
`svg`, `text_file` (to upload under a .png name), `padded_png` (a valid PNG of an exact byte size).

Readers: `decode_png` (8-bit, non-interlaced, every filter type), `webp_info` (a WebP's chunks and canvas
size, read from its headers) and `decode` (any format libvips reads, through the `vips` command-line
tool of the Debian package libvips-tools, into rows of pixels). `jpeg` converts pixels to a JPEG with the
same tool, since a JPEG encoder is not worth writing by hand.
"""
import os
import shutil
import struct
import subprocess
import tempfile
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---- PNG writing ------------------------------------------------------------------------------------

def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _ihdr(width, height, colour_type):
    # bit depth 8, compression 0, filter 0, no interlace
    return _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))


def png(width, height, pixel=None, gray=False):
    """An 8-bit PNG, RGB (`pixel(x, y)` -> (r, g, b)) or grayscale (`gray=True`, `pixel(x, y)` -> v).
    Without `pixel`, a smooth gradient. Rows use filter 0 (none)."""
    if pixel is None:
        if gray:
            pixel = lambda x, y: (x * 255 // max(1, width - 1) + y * 255 // max(1, height - 1)) // 2  # noqa: E731
        else:
            pixel = lambda x, y: (x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), 128)  # noqa: E731
    raw = bytearray()
    for y in range(height):
        raw.append(0)
        if gray:
            raw.extend(pixel(x, y) for x in range(width))
        else:
            for x in range(width):
                raw.extend(pixel(x, y))
    return (PNG_SIGNATURE + _ihdr(width, height, 0 if gray else 2)
            + _chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + _chunk(b"IEND", b""))


def solid_png(width, height, colour=(200, 60, 40)):
    """A one-colour RGB PNG; built row by row so large sizes stay quick."""
    row = b"\x00" + bytes(colour) * width
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return PNG_SIGNATURE + _ihdr(width, height, 2) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


STRIPE_COLOURS = [(230, 40, 40), (40, 200, 60), (40, 60, 230), (240, 240, 240)]


def stripe_colour(x, y, period=8):
    """The colour `stripes_png` puts at (x, y): vertical bands of four colours, `period` pixels wide."""
    return STRIPE_COLOURS[(x // period) % len(STRIPE_COLOURS)]


def stripes_png(width=64, height=64, period=8):
    return png(width, height, lambda x, y: stripe_colour(x, y, period))


def mask_png(width, height, box, gray=True):
    """A mask: white (255) inside `box` = (x0, y0, x1, y1), exclusive ends, the area to repaint; black
    elsewhere, the area to keep. Grayscale by default, RGB with gray=False."""
    x0, y0, x1, y1 = box
    inside = lambda x, y: x0 <= x < x1 and y0 <= y < y1  # noqa: E731
    if gray:
        return png(width, height, lambda x, y: 255 if inside(x, y) else 0, gray=True)
    return png(width, height, lambda x, y: (255, 255, 255) if inside(x, y) else (0, 0, 0))


def bomb_png(width=20000, height=20000):
    """A decompression bomb's header: the IHDR claims width×height RGB pixels (1.2 GB decoded at the
    default size), the IDAT holds a few hundred bytes. Valid chunk CRCs, so only the size is wrong."""
    data = zlib.compress(b"\x00" * (1 + 3 * min(width, 4096)), 9)
    return PNG_SIGNATURE + _ihdr(width, height, 2) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def svg(width=64, height=64):
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f'<rect width="{width}" height="{height}" fill="#c03020"/><circle cx="32" cy="32" r="20" fill="#2040c0"/>'
            f'</svg>\n').encode()


def text_file():
    """Plain text, to be uploaded under a name ending in .png."""
    return b"This is not an image, whatever its name says.\n" * 20


def padded_png(size, width=32, height=32):
    """A valid PNG of exactly `size` bytes: a small stripes picture with a private ancillary chunk
    ("atLr", ignored by decoders) filling the rest, so a test can send a large file that is only large."""
    small = stripes_png(width, height)
    head, tail = small[:33], small[33:]  # signature + IHDR, then IDAT + IEND
    filler = size - len(small) - 12
    assert filler >= 0, f"{size} bytes is smaller than the picture itself"
    return head + _chunk(b"atLr", b"\x00" * filler) + tail


# ---- PNG reading ------------------------------------------------------------------------------------

class Pixels:
    """Decoded pixels: width, height, channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) and rows of bytes."""

    def __init__(self, width, height, channels, rows):
        self.width, self.height, self.channels, self.rows = width, height, channels, rows

    def rgb(self, x, y):
        """The (r, g, b) at (x, y); gray is spread over all three, alpha is ignored."""
        c = self.channels
        p = self.rows[y][x * c:(x + 1) * c]
        return (p[0], p[0], p[0]) if c <= 2 else (p[0], p[1], p[2])

    def __repr__(self):
        return f"<Pixels {self.width}x{self.height}x{self.channels}>"


def png_size(data):
    """(width, height) from a PNG's IHDR."""
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def decode_png(data):
    """Decodes an 8-bit, non-interlaced PNG (gray, gray+alpha, RGB, RGBA) into Pixels."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, colour_type, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour_type)
    if depth != 8 or channels is None or interlace != 0:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour_type}, interlace {interlace}")
    raw = zlib.decompress(b"".join(idat))
    stride, bpp = width * channels, channels
    rows, previous, pos = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[pos], bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = previous[i]
            c = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + predictor) & 0xFF
            elif kind != 0:
                raise ValueError(f"bad PNG filter {kind}")
        rows.append(bytes(line))
        previous = line
    return Pixels(width, height, channels, rows)


# ---- WebP headers -----------------------------------------------------------------------------------

def webp_info(data):
    """A WebP file's chunk names and canvas size, from its headers: {"chunks": [...], "width", "height",
    "animated"}. Raises AssertionError when the bytes are not a RIFF WebP."""
    assert len(data) >= 20 and data[:4] == b"RIFF" and data[8:12] == b"WEBP", f"not a WebP: {data[:16]!r}"
    riff_size = struct.unpack("<I", data[4:8])[0]
    assert riff_size + 8 <= len(data) + 1, "truncated RIFF"
    chunks, width, height, pos = [], None, None, 12
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        chunks.append(kind.decode("latin-1"))
        if kind == b"VP8X" and width is None:
            width = 1 + int.from_bytes(body[4:7], "little")
            height = 1 + int.from_bytes(body[7:10], "little")
        elif kind == b"VP8 " and width is None:
            assert body[3:6] == b"\x9d\x01\x2a", "bad VP8 start code"
            width = struct.unpack("<H", body[6:8])[0] & 0x3FFF
            height = struct.unpack("<H", body[8:10])[0] & 0x3FFF
        elif kind == b"VP8L" and width is None:
            assert body[0] == 0x2F, "bad VP8L signature"
            bits = int.from_bytes(body[1:5], "little")
            width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        pos += 8 + size + (size & 1)
    return {"chunks": chunks, "width": width, "height": height, "animated": "ANIM" in chunks}


# ---- through the vips command-line tool -------------------------------------------------------------

def vips_available():
    return shutil.which("vips") is not None


def _vips(args):
    if not vips_available():
        raise RuntimeError("the `vips` command is missing: install the Debian package libvips-tools")
    subprocess.run(["vips", *args], check=True, capture_output=True, timeout=120)


def decode(data, suffix=".webp"):
    """Any image libvips reads (WebP, JPEG, PNG …) decoded to Pixels: `vips copy` to an 8-bit PNG, then
    decode_png. The first frame of an animation."""
    with tempfile.TemporaryDirectory() as tmp:
        source, target = os.path.join(tmp, "in" + suffix), os.path.join(tmp, "out.png")
        with open(source, "wb") as f:
            f.write(data)
        _vips(["copy", source, target + "[interlace=false]"])
        with open(target, "rb") as f:
            return decode_png(f.read())


def jpeg(width=96, height=64, pixel=None, quality=90):
    """A baseline JPEG of an RGB picture (png's `pixel` function), encoded by `vips`."""
    with tempfile.TemporaryDirectory() as tmp:
        source, target = os.path.join(tmp, "in.png"), os.path.join(tmp, "out.jpg")
        with open(source, "wb") as f:
            f.write(png(width, height, pixel))
        _vips(["copy", source, f"{target}[Q={quality}]"])
        with open(target, "rb") as f:
            data = f.read()
    assert data[:3] == b"\xff\xd8\xff", "vips did not write a JPEG"
    return data
