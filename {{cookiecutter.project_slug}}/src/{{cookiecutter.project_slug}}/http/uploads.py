"""One uploaded file from a multipart/form-data body, parsed as it arrives, passed on in chunks
and refused (413) as soon as it passes its limit (docs/design_decisions.md, "Uploads")."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
    data: bytes | bytearray


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
    pending: list[bytes] = field(default_factory=list)
    """File bytes parsed and not yet handed on (what one body chunk held, at most)."""
    size: int = 0
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
            self.size += end - start
            if self.size > self.limit:
                raise UploadTooLarge(self.limit)
            self.pending.append(data[start:end])

    def part_end(self) -> None:
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


class UploadStream:
    """The file of a multipart/form-data body as it arrives: `await start()` reads up to the
    file's headers (its name and type), then `chunks()` yields its bytes; both raise AppError
    (400) for a malformed body or a client gone, UploadTooLarge (413) past the limit."""

    def __init__(self, request: Request, limit: int) -> None:
        media_type, params = parse_options_header(request.headers.get("content-type"))
        boundary = params.get(b"boundary")
        if media_type != b"multipart/form-data" or not boundary:
            raise AppError("expected multipart/form-data with a file")
        self.body_limit = limit + MULTIPART_OVERHEAD_BYTES
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.body_limit:
            raise UploadTooLarge(limit)
        self.parts = _Parts(limit)
        self.parser = self.parts.parser(boundary)
        self.body = request.stream()
        self.received = 0

    async def _feed(self) -> bool:
        """Parse the next body chunk; False once the body (or the multipart data) ended."""
        if self.parts.ended:
            return False
        try:
            chunk = await anext(self.body, None)
            if chunk is None:
                self.parser.finalize()
                return False
            self.received += len(chunk)
            if self.received > self.body_limit:
                raise UploadTooLarge(self.parts.limit)
            self.parser.write(chunk)
        except FormParserError:
            raise AppError("malformed multipart/form-data body") from None
        except ClientDisconnect:
            raise AppError("the client went away during the upload") from None
        return True

    async def start(self) -> UploadedFile:
        """The file's name and type (its `data` stays empty: the bytes come from chunks())."""
        while self.parts.found is None:
            if not await self._feed():
                raise AppError("expected a multipart field named 'file' with a file")
        return self.parts.found

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes, a body chunk's worth at a time, to the end of a complete body."""
        while True:
            while self.parts.pending:
                yield self.parts.pending.pop(0)
            if not await self._feed():
                break
        if not self.parts.ended:
            raise AppError("expected a multipart field named 'file' with a file")


async def read_upload(request: Request, limit: int) -> UploadedFile:
    """The multipart field `file`, at most `limit` bytes: 400 for anything else, 413 as soon
    as the file or the body passes its limit. Its bytes in one buffer, never copied whole."""
    stream = UploadStream(request, limit)
    found = await stream.start()
    data = bytearray()
    async for chunk in stream.chunks():
        data += chunk
    found.data = data
    return found
