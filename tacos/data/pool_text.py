"""A pool file's text: gzip, the encoding (UTF-8, or UTF-16/32 announced by a byte-order mark), and text that could
not be written back as UTF-8 (a lone surrogate from a JSON escape). Every problem is a `DataError` naming the file
(and the row) and the fix."""
from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

# Byte-order marks of the encodings read besides UTF-8 (UTF-32 first: its little-endian mark starts like UTF-16's).
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
         (b"\xfe\xff", "utf-16"))
_SURROGATE = re.compile("[\ud800-\udfff]")


class DataError(ValueError):
    """Unusable input data. The message names the file (or HF dataset), the row and what to do."""


def read_pool_text(file: Path) -> str:
    """The text of a pool file: gunzipped when it is gzip data, decoded as UTF-8 (or UTF-16/32 after their
    byte-order mark), the byte-order mark dropped."""
    raw = file.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the suffix
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{file}: corrupt gzip data ({e}); re-create the .gz file or use the uncompressed "
                            "file.") from e
    encoding = next((name for bom, name in _BOMS if raw.startswith(bom)), "utf-8")
    try:
        text = raw.decode(encoding)  # utf-16/utf-32 read their byte-order mark and drop it
    except UnicodeDecodeError as e:
        if encoding != "utf-8":
            name = encoding.upper()
            raise DataError(f"{file}: starts with a {name} byte-order mark but is not valid {name} at byte offset "
                            f"{e.start} ({e.reason}). Re-encode the file as UTF-8 "
                            f"(e.g. `iconv -f {encoding} -t utf-8 in.json > out.json`).") from e
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - raw.rfind(b"\n", 0, e.start)
        raise DataError(f"{file}: not valid UTF-8 at byte offset {e.start} (line {line}, byte {col} of that line): "
                        f"{raw[e.start:e.start + 4]!r}. Re-encode the file as UTF-8 "
                        "(e.g. `iconv -f latin1 -t utf-8 in.json > out.json`).") from e
    text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark is an encoding marker, not data
    if "\x00" in text:  # JSON never holds a raw NUL: UTF-16/32 text without a byte-order mark
        at = text.index("\x00")
        raise DataError(f"{file}: holds NUL bytes (first at character {at}, line {text.count(chr(10), 0, at) + 1}); "
                        "it is probably UTF-16 or UTF-32 without a byte-order mark. Re-encode it as UTF-8 "
                        "(e.g. `iconv -f utf-16le -t utf-8 in.json > out.json`).")
    if not text.strip():
        raise DataError(f"{file}: file is empty; expected a JSON array or JSON Lines of instruction rows.")
    return text


def check_unicode(loc: str, **texts: str) -> None:
    """Python's JSON reader accepts an unpaired surrogate escape ("\\ud800"); no UTF-8 writer does."""
    for name, text in texts.items():
        m = _SURROGATE.search(text)
        if m:
            raise DataError(f"{loc}: {name} holds a lone UTF-16 surrogate {m.group()!r} at character {m.start()} "
                            "(a JSON escape like \\ud800 without its pair), which is not valid Unicode text and "
                            "cannot be written as UTF-8; fix or remove the row.")
