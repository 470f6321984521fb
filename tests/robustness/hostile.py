"""Hostile corpus files, made here byte by byte: compressed bombs and a nesting bomb.

Each is small on disk and huge once unpacked, like the files of the security test that
found M2 (a 1.46 MB PDF that peaked at 2.95 GB, a 760 KB .docx holding 300 MB of XML).
"""
from __future__ import annotations

import io
import zipfile
import zlib

MB = 1_000_000


def _deflated_zeros(size: int, block: int = 1 << 20) -> bytes:
    z = zlib.compressobj(6)
    zeros = bytes(block)
    parts = [z.compress(zeros) for _ in range(size // block)]
    parts.append(z.compress(bytes(size % block)))
    parts.append(z.flush())
    return b"".join(parts)


def _pdf(content: bytes, filters: str) -> bytes:
    """A one-page PDF whose page content stream is ``content`` under ``filters``."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << >> >>",
        b"<< /Length %d /Filter %s >>\nstream\n" % (len(content), filters.encode()) + content + b"\nendstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % o for o in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def flate_bomb_pdf(unpacked: int = 1500 * MB) -> bytes:
    """About 1.5 MB on disk; its page content inflates to ``unpacked`` bytes of zeros."""
    return _pdf(_deflated_zeros(unpacked), "/FlateDecode")


def _lzw_zeros(codes: int) -> bytes:
    """An LZW stream (PDF LZWDecode, early change) of zero bytes: each code repeats the
    last string plus one more zero, so ``codes`` codes unpack to about codes²/2 bytes until
    the table is full, then 4,000 bytes per code."""
    bits, width, buffer, out = [], 9, 0, bytearray()

    def emit(code: int) -> None:
        nonlocal buffer, width
        bits.append((code, width))

    emit(256)  # clear
    emit(0)
    next_code = 258
    prev = 0
    for _ in range(codes):
        code = next_code if next_code < 4095 else prev
        emit(code)
        if next_code < 4095:
            prev = next_code
            next_code += 1
            if next_code + 1 >= (1 << width) and width < 12:
                width += 1
    emit(257)  # end of data
    acc, n = 0, 0
    for code, w in bits:
        acc = (acc << w) | code
        n += w
        while n >= 8:
            n -= 8
            out.append((acc >> n) & 0xFF)
        acc &= (1 << n) - 1
    if n:
        out.append((acc << (8 - n)) & 0xFF)
    return bytes(out)


def lzw_bomb_pdf(codes: int = 400_000) -> bytes:
    """LZW is not a flate stream: only the worker's memory limit stops this one."""
    return _pdf(_lzw_zeros(codes), "/LZWDecode")


def docx_bomb(xml_bytes: int = 300 * MB) -> bytes:
    """A .docx whose word/document.xml holds ``xml_bytes`` of paragraphs (~760 KB zipped)."""
    para = b"<w:p><w:r><w:t>" + "地域づくり".encode() * 20 + b"</w:t></w:r></w:p>"
    head = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>')
    tail = b"</w:body></w:document>"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml",
                   '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                   'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
                   'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName='
                   '"/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.'
                   'document.main+xml"/></Types>')
        z.writestr("_rels/.rels",
                   '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
                   'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
                   'officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>')
        with z.open("word/document.xml", "w", force_zip64=True) as f:
            f.write(head)
            block = para * (MB // len(para))
            written = len(head)
            while written + len(block) + len(tail) <= xml_bytes:
                f.write(block)
                written += len(block)
            f.write(tail)
    return out.getvalue()


def nested_html(depth: int = 100_000) -> bytes:
    return (b"<html><body>" + b"<div>" * depth + "釧路の地域づくり".encode() + b"</div>" * depth
            + b"</body></html>")
