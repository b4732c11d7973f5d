"""QR images: well-formed SVG and PNG, with the quiet zone, scale and error level asked for.

No QR decoder is installed, so the PNG is read back with the stdlib (zlib) into modules and
the symbol's own format information is checked, which tells the error level without
trusting segno's word for it.
"""

from __future__ import annotations

import struct
import zlib
from xml.etree import ElementTree

import pytest

from pixlive.adapters.qrcode import qr_png, qr_svg
from pixlive.domain.brcode import build_brcode

SVG_NS = "{http://www.w3.org/2000/svg}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BORDER = 4
SCALE = 8

PAYLOADS = [
    "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-426655440000"
    "5204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D",
    build_brcode(
        key="k" * 77,
        merchant_name="Comércio de Calçados Irmãos Araújo",
        merchant_city="São José dos Campos",
        txid="A" * 25,
        amount_cents=999_999_999_999,
    ),
    "x",  # short enough for a Micro QR, which bank apps cannot read
]


def parse_svg(svg: bytes) -> ElementTree.Element:
    # The input is our own output, not untrusted data, so defusedxml would add nothing.
    return ElementTree.fromstring(svg)  # noqa: S314


def read_png(data: bytes) -> list[list[int]]:
    """Pixels of a greyscale PNG of bit depth 1 to 8 (what segno writes), 0 = black."""
    assert data.startswith(PNG_SIGNATURE)
    pos = len(PNG_SIGNATURE)
    header = b""
    compressed = b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC on chunk {kind!r}"
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert colour == 0 and depth in (1, 2, 4, 8) and interlace == 0
    raw = zlib.decompress(compressed)
    stride = (width * depth + 7) // 8
    rows: list[list[int]] = []
    previous = bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        filter_type, row = line[0], bytearray(line[1:])
        for i in range(stride):
            left = row[i - 1] if i else 0
            up = previous[i]
            up_left = previous[i - 1] if i else 0
            if filter_type == 1:
                row[i] = (row[i] + left) & 0xFF
            elif filter_type == 2:
                row[i] = (row[i] + up) & 0xFF
            elif filter_type == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            elif filter_type == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                row[i] = (row[i] + pred) & 0xFF
        previous = row
        bits = "".join(f"{b:08b}" for b in row)
        rows.append([int(bits[x * depth : (x + 1) * depth], 2) for x in range(width)])
    return rows


def modules(pixels: list[list[int]]) -> list[list[bool]]:
    """True for a dark module, sampling the middle of each SCALE x SCALE cell."""
    size = len(pixels) // SCALE
    return [
        [pixels[y * SCALE + SCALE // 2][x * SCALE + SCALE // 2] == 0 for x in range(size)]
        for y in range(size)
    ]


def format_error_level(symbol: list[list[bool]]) -> str:
    """The error level from the 15 format bits next to the top-left finder."""
    coords = [(8, c) for c in (0, 1, 2, 3, 4, 5, 7, 8)] + [(r, 8) for r in (7, 5, 4, 3, 2, 1, 0)]
    bits = "".join("1" if symbol[r][c] else "0" for r, c in coords)
    unmasked = int(bits, 2) ^ 0b101010000010010
    return {0b01: "L", 0b00: "M", 0b11: "Q", 0b10: "H"}[unmasked >> 13]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_svg_is_standalone_and_scalable(payload: str) -> None:
    svg = qr_svg(payload)
    assert not svg.startswith(b"<?xml")  # so it can be inlined into HTML as it is
    root = parse_svg(svg)
    assert root.tag == f"{SVG_NS}svg"
    assert "width" not in root.attrib and "height" not in root.attrib
    x, y, w, h = (float(n) for n in root.attrib["viewBox"].split())
    assert (x, y) == (0, 0) and w == h
    # A full-size QR (version 1 is 21 modules), plus the quiet zone on both sides.
    assert w >= 21 + 2 * BORDER and (w - 2 * BORDER - 17) % 4 == 0
    assert root.find(f"{SVG_NS}path") is not None


@pytest.mark.parametrize("payload", PAYLOADS)
def test_png_is_a_black_on_white_qr_with_a_quiet_zone(payload: str) -> None:
    png = qr_png(payload)
    assert png.startswith(PNG_SIGNATURE)
    pixels = read_png(png)
    assert len(pixels) == len(pixels[0])
    assert len(pixels) % SCALE == 0
    symbol = modules(pixels)
    size = len(symbol)
    inner = size - 2 * BORDER
    assert inner >= 21 and (inner - 17) % 4 == 0  # a regular QR code, never a Micro QR

    for i in range(size):
        for j in list(range(BORDER)) + list(range(size - BORDER, size)):
            assert not symbol[i][j] and not symbol[j][i], "the quiet zone must stay light"

    qr = [row[BORDER : size - BORDER] for row in symbol[BORDER : size - BORDER]]
    # The three finder patterns: a dark 7x7 ring around a light ring around a dark 3x3.
    for top, left in ((0, 0), (0, inner - 7), (inner - 7, 0)):
        for r in range(7):
            for c in range(7):
                ring = max(abs(r - 3), abs(c - 3))
                assert qr[top + r][left + c] == (ring != 2)
    assert format_error_level(qr) == "M"


def test_svg_and_png_draw_the_same_size_of_symbol() -> None:
    payload = PAYLOADS[0]
    root = parse_svg(qr_svg(payload))
    width = float(root.attrib["viewBox"].split()[2])
    assert len(read_png(qr_png(payload))) == width * SCALE
