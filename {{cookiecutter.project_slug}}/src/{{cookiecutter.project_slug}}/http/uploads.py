"""One uploaded file from a multipart/form-data body, parsed as it arrives and refused (413) as
soon as it passes its limit (docs/design_decisions.md, "Uploads")."""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from ..errors import AppError

MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""Room for the boundaries, part headers and small fields around the file."""
MAX_HEADER_BYTES = 8 * 1024
"""The longest part header (name and value) accepted."""
MAX_PARTS = 10
FILE_FIELD = b"file"


class UploadTooLarge(AppError):
    """The file (or the whole body) is over its limit (413)."""

    status = 413
    code = "too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"attachment over {limit} bytes")


@dataclass(slots=True)
class UploadedFile:
    """The multipart field `file`: its file name, its part's Content-Type and its bytes."""

    filename: str
    content_type: str | None
    data: bytes


def _text(raw: bytes) -> str:
    """A header parameter as text: UTF-8 (what browsers send) or else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@dataclass(slots=True)
class _Parts:
    """Callbacks for the streaming parser: keeps the `file` part, counts the rest."""

    limit: int
    parts: int = 0
    name_buffer: bytearray = field(default_factory=bytearray)
    value_buffer: bytearray = field(default_factory=bytearray)
    headers: dict[bytes, bytes] = field(default_factory=dict)
    in_file: bool = False
    found: UploadedFile | None = None
    data: bytearray = field(default_factory=bytearray)
    ended: bool = False

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise AppError(f"at most {MAX_PARTS} multipart fields")
        self.headers.clear()
        self.in_file = False

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.name_buffer += data[start:end]
        self._check_header()

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self.value_buffer += data[start:end]
        self._check_header()

    def _check_header(self) -> None:
        if len(self.name_buffer) + len(self.value_buffer) > MAX_HEADER_BYTES:
            raise AppError("multipart part header too long")

    def header_end(self) -> None:
        self.headers[bytes(self.name_buffer).strip().lower()] = bytes(self.value_buffer).strip()
        self.name_buffer.clear()
        self.value_buffer.clear()

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition"))
        if options.get(b"name") != FILE_FIELD or b"filename" not in options:
            return  # another field: its bytes are only counted (within the body limit)
        if self.found is not None:
            raise AppError("expected one file in the multipart field 'file'")
        filename = _text(options[b"filename"])
        if "\x00" in filename:
            raise AppError("the file name may not contain NUL characters")
        content_type = self.headers.get(b"content-type")
        self.in_file = True
        self.found = UploadedFile(
            filename=filename,
            content_type=None if content_type is None else _text(content_type),
            data=b"",
        )

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.data += data[start:end]
            if len(self.data) > self.limit:
                raise UploadTooLarge(self.limit)

    def part_end(self) -> None:
        if self.in_file and self.found is not None:
            self.found.data = bytes(self.data)
            self.data = bytearray()
        self.in_file = False

    def end(self) -> None:
        self.ended = True

    def parser(self, boundary: bytes) -> MultipartParser:
        return MultipartParser(
            boundary,
            {
                "on_part_begin": self.part_begin,
                "on_header_field": self.header_field,
                "on_header_value": self.header_value,
                "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished,
                "on_part_data": self.part_data,
                "on_part_end": self.part_end,
                "on_end": self.end,
            },
        )


async def read_upload(request: Request, limit: int) -> UploadedFile:
    """The multipart field `file`, at most `limit` bytes: 400 for anything else, 413 as soon
    as the file or the body passes its limit."""
    media_type, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise AppError("expected multipart/form-data with a file")
    body_limit = limit + MULTIPART_OVERHEAD_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > body_limit:
        raise UploadTooLarge(limit)
    parts = _Parts(limit)
    try:
        parser = parts.parser(boundary)
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > body_limit:
                raise UploadTooLarge(limit)
            parser.write(chunk)
            if parts.ended:
                break
        parser.finalize()
    except FormParserError:
        raise AppError("malformed multipart/form-data body") from None
    except ClientDisconnect:
        raise AppError("the client went away during the upload") from None
    if parts.found is None or not parts.ended:
        raise AppError("expected a multipart field named 'file' with a file")
    return parts.found
