"""QR code images of a BR Code, as SVG (for the page) and PNG (for whoever wants a file)."""

from __future__ import annotations

import io

import segno

# M is what Pix QR codes customarily use: it survives a smudged or glary screen while
# keeping the symbol small enough for a phone camera at arm's length.
ERROR_LEVEL = "m"
# The QR spec asks for a quiet zone of 4 modules; scanners fail without it on busy pages.
BORDER = 4
PNG_SCALE = 8
DARK = "#000"
LIGHT = "#fff"


def _symbol(payload: str) -> segno.QRCode:
    # micro=False: segno would pick a Micro QR for short text, which bank apps do not read.
    # boost_error=False keeps the level fixed, so the same payload always gives the same
    # image, whatever segno's heuristics do in a later release.
    return segno.make_qr(payload, error=ERROR_LEVEL, boost_error=False)


def qr_svg(payload: str) -> bytes:
    """A standalone SVG that scales to whatever box the page gives it.

    No width or height, only a viewBox in modules, so CSS sizes it; no XML declaration,
    so it can also be inlined into HTML. The light background is painted, as a code drawn
    on a dark page would otherwise not scan.
    """
    out = io.BytesIO()
    _symbol(payload).save(
        out,
        kind="svg",
        border=BORDER,
        scale=1,
        dark=DARK,
        light=LIGHT,
        xmldecl=False,
        svgns=True,
        omitsize=True,
        svgclass="pix-qr",
        lineclass=None,
        title="QR code Pix",
    )
    return out.getvalue()


def qr_png(payload: str) -> bytes:
    """A black on white PNG, 8 pixels per module."""
    out = io.BytesIO()
    _symbol(payload).save(out, kind="png", border=BORDER, scale=PNG_SCALE, dark=DARK, light=LIGHT)
    return out.getvalue()
