"""k6's per-request CSV output, read as a stream of column blocks.

k6 writes one row per metric sample: ``metric_name,timestamp,metric_value,<system tags>...``, about
17 rows per request; the analysis needs four per-request metrics and k6's once-a-second ``vus``
gauge (:data:`METRICS`) and, of the tags, only ``status``. The file is decompressed in one thread
and cut into blocks of whole rows, which a pool of threads parses with pyarrow's CSV reader
(converting only the four columns used) and cuts down to those metrics at once. Blocks come out in
file order, a few at a time, so memory does not depend on the file's size. (Like pyarrow's default,
a quoted value may not contain a newline; k6 writes none in the tags it is told to keep.)

What a cut-short file (k6 killed, disk full, partial upload) still holds is kept: reading stops at
the first undecodable byte and the stats say where; a torn last row is skipped and counted.
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

# Metric codes in :class:`Block`: index into this tuple. ``vus`` (active virtual users) is sampled by k6
# once a second whatever the load: it tells a ramp's stages apart at the cost of one row per second.
METRICS = ("http_reqs", "http_req_duration", "http_req_waiting", "aigw_ok", "vus")
HTTP_REQS, DURATION, WAITING, OK, VUS = range(len(METRICS))
_COLUMNS = ("metric_name", "timestamp", "metric_value", "status")
_TYPES = {"metric_name": pa.dictionary(pa.int32(), pa.string()), "timestamp": pa.int64(),
          "metric_value": pa.float64(), "status": pa.int64()}
# Decompressed bytes per block: large enough to amortise per-block work, small enough to stay cheap.
BLOCK_BYTES = 4 << 20
# Unix milliseconds of 2001-09-09: smaller timestamps are seconds (k6's default time format), not ms.
_MIN_EPOCH_MS = 10**12


class K6CsvError(Exception):
    """The file is missing, not k6 CSV output, or unreadable from its first byte."""


@dataclass(frozen=True)
class Block:
    """The samples of the wanted metrics in one block of the file, in file order."""

    metric: np.ndarray  # int8 code into METRICS
    t_ms: np.ndarray  # int64, unix milliseconds
    value: np.ndarray  # float64
    status: np.ndarray  # int64 HTTP status of the sample's request; 0 = no response or no status tag


@dataclass
class ReadStats:
    rows: int = 0  # data rows parsed, all metrics
    rows_used: int = 0  # rows of the wanted metrics
    malformed_rows: int = 0  # rows skipped: cut, wrong number of fields, or no timestamp/value
    bytes: int = 0  # decompressed bytes read
    has_status: bool = True  # False if k6 was told not to write the status tag
    truncated: str | None = None  # why reading stopped before the end of the file, if it did


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0))


class _Source(io.RawIOBase):
    """The file's decompressed bytes; a damaged gzip stream ends early, with ``error`` set, instead of failing.

    pyarrow decompresses (the fast path). When it fails, the bytes it had decoded but not returned are
    lost with the exception, so the file is decoded again with zlib up to the same offset and then
    as far as the data allows: every decodable byte is delivered, whatever the read sizes."""

    def __init__(self, path: Path):
        self._path = path
        self._stream = pa.input_stream(str(path), compression="gzip" if path.suffix == ".gz" else None)
        self._offset = 0
        self._salvage: Iterator[bytes] | None = None
        self._pending = b""
        self.error: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` as far as the data goes; 0 at the end (or at the damage)."""
        if self._salvage is None:
            try:
                filled = 0
                while filled < len(buffer):
                    n = self._stream.readinto(buffer[filled:])
                    if n == 0:
                        break
                    filled += n
                self._offset += filled
                return filled
            except OSError:
                pass  # read() below starts the salvage from self._offset
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if self._salvage is None:
            try:
                data = self._stream.read(size if size >= 0 else None)
                self._offset += len(data)
                return data
            except OSError as exc:
                self.error = str(exc)
                self._salvage = _zlib_from(self._path, self._offset)
        while size < 0 or len(self._pending) < size:
            piece = next(self._salvage, b"")
            if not piece:
                break
            self._pending += piece
        data, self._pending = (self._pending, b"") if size < 0 else (self._pending[:size], self._pending[size:])
        return data

    def close(self) -> None:
        self._stream.close()
        super().close()


def _zlib_from(path: Path, skip: int) -> Iterator[bytes]:
    """Decompressed bytes of a (possibly cut or corrupt) gzip file from offset ``skip``, until the damage."""
    decoder = zlib.decompressobj(wbits=31)
    with path.open("rb") as fh:
        while True:
            raw = fh.read(1 << 16)
            if not raw:
                return
            while raw:
                try:
                    data = decoder.decompress(raw)
                except zlib.error:
                    return
                raw = b""
                if decoder.eof:  # k6 writes one gzip member; concatenated members are valid gzip too
                    raw, decoder = decoder.unused_data, zlib.decompressobj(wbits=31)
                if skip >= len(data):
                    skip -= len(data)
                    continue
                yield data[skip:]
                skip = 0


def _row_blocks(source: _Source, first: bytes, block_bytes: int) -> Iterator[memoryview]:
    """Whole rows, about ``block_bytes`` at a time; the last one may lack its newline (or be torn).

    Each block is a buffer of its own (it is parsed in another thread while the next one fills),
    decompressed into place after the previous block's unfinished row: no further copies."""
    rest = first
    while True:
        buffer = bytearray(len(rest) + block_bytes)
        buffer[: len(rest)] = rest
        end = len(rest) + source.readinto(memoryview(buffer)[len(rest) :])
        if end == len(rest):
            if rest:
                yield memoryview(buffer)[:end]
            return
        cut = buffer.rfind(b"\n", 0, end) + 1
        rest = bytes(buffer[cut:end])
        if cut:
            yield memoryview(buffer)[:cut]


@dataclass(frozen=True)
class _Parsed:
    block: Block
    rows: int
    malformed: int


class _Parser:
    """Parses one block of rows into a :class:`Block` (thread-safe: no shared mutable state)."""

    def __init__(self, header: list[str]):
        self.header = header
        self.convert_options = pcsv.ConvertOptions(include_columns=list(_COLUMNS), include_missing_columns=True,
                                                   column_types=_TYPES)

    def __call__(self, rows: bytes) -> _Parsed:
        skipped = [0]

        def skip(_row: pcsv.InvalidRow) -> str:
            skipped[0] += 1
            return "skip"

        table = pcsv.read_csv(
            pa.py_buffer(rows),
            # One parse of the whole block (the pool provides the parallelism).
            read_options=pcsv.ReadOptions(column_names=self.header, use_threads=False, block_size=len(rows) + 1),
            parse_options=pcsv.ParseOptions(invalid_row_handler=skip),
            convert_options=self.convert_options,
        )
        parts = [_wanted(batch) for batch in table.to_batches()]
        fields = ("metric", "t_ms", "value", "status")
        block = Block(*(np.concatenate([getattr(b, f) for b, _ in parts]) for f in fields)) if parts else _empty()
        return _Parsed(block, table.num_rows, skipped[0] + sum(n for _, n in parts))


def read_blocks(path: Path, stats: ReadStats, block_bytes: int = BLOCK_BYTES,
                threads: int | None = None) -> Iterator[Block]:
    """Yield the wanted metrics' samples block by block, in file order; ``stats`` is filled in as reading goes.

    ``threads`` parse blocks in parallel (default: the CPUs this process may use)."""
    path = Path(path)
    if not path.exists():
        raise K6CsvError(f"{path}: missing")
    source = _Source(path)
    try:
        header, first = _header(path, source)
        stats.has_status = "status" in header
        stats.bytes = len(",".join(header)) + 1
        parse = _Parser(header)
        workers = max(1, threads or usable_cpus())
        with ThreadPoolExecutor(workers, thread_name_prefix="k6csv") as pool:
            in_flight: list[Future[_Parsed]] = []
            blocks = _row_blocks(source, first, block_bytes)
            while True:
                for rows in blocks:
                    stats.bytes += len(rows)
                    in_flight.append(pool.submit(parse, rows))
                    if len(in_flight) > workers:
                        break
                if not in_flight:
                    break
                try:
                    parsed = in_flight.pop(0).result()
                except pa.ArrowInvalid as exc:  # e.g. a value that is not a number where k6 writes one
                    for future in in_flight:
                        future.cancel()
                    stats.truncated = f"reading stopped after {stats.rows} rows: {exc}"
                    return
                _check_unit(path, parsed.block, stats)
                stats.rows += parsed.rows
                stats.rows_used += parsed.block.t_ms.size
                stats.malformed_rows += parsed.malformed
                yield parsed.block
        if source.error:
            stats.truncated = f"reading stopped after {stats.rows} rows: {source.error}"
    finally:
        source.close()


def _header(path: Path, source: _Source) -> tuple[list[str], bytes]:
    """The column names, and the bytes read after the header line."""
    first = source.read(1 << 16)
    while first and b"\n" not in first:
        more = source.read(1 << 16)
        if not more:
            break
        first += more
    if not first:
        raise K6CsvError(f"{path}: unreadable ({source.error or 'empty'})")
    line, _, rest = first.partition(b"\n")
    header = line.decode(errors="replace").rstrip("\r").split(",")
    missing = [c for c in _COLUMNS[:3] if c not in header]
    if missing:
        raise K6CsvError(f"{path}: not k6 CSV output (no {', '.join(missing)} column in its header)")
    return header, rest


def _check_unit(path: Path, block: Block, stats: ReadStats) -> None:
    if stats.rows_used == 0 and block.t_ms.size and int(block.t_ms.min()) < _MIN_EPOCH_MS:
        raise K6CsvError(f"{path}: timestamps are not unix milliseconds; run k6 with K6_CSV_TIME_FORMAT=unix_milli")


def _empty() -> Block:
    return Block(np.empty(0, np.int8), np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int64))


def _wanted(batch: pa.RecordBatch) -> tuple[Block, int]:
    """The rows of the wanted metrics, and how many of them had no timestamp or value."""
    names = batch.column(0)  # dictionary-encoded: the metric names of this block, and an index per row
    codes = np.full(len(names.dictionary) + 1, -1, dtype=np.int8)  # last slot: null metric name
    for i, name in enumerate(names.dictionary.to_pylist()):
        if name in METRICS:
            codes[i] = METRICS.index(name)
    metric = codes[_numpy(names.indices, len(names.dictionary))]
    t_ms, value, status = batch.column(1), batch.column(2), batch.column(3)
    usable = metric >= 0
    wanted = int(np.count_nonzero(usable))
    for column in (t_ms, value):
        if column.null_count:
            usable &= column.is_valid().to_numpy(zero_copy_only=False)
    keep = np.flatnonzero(usable)
    block = Block(metric[keep], _numpy(t_ms, 0)[keep], _numpy(value, 0.0)[keep], _numpy(status, 0)[keep])
    return block, wanted - keep.size


def _numpy(array: pa.Array, fill: float) -> np.ndarray:
    """The array's values as numpy, nulls as ``fill`` (without a copy when there are none)."""
    return (array.fill_null(fill) if array.null_count else array).to_numpy()
