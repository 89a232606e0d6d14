"""Reads the record batches sluice wrote to a partition directory, as a user inspecting the
data dir would (the .log files hold Kafka v2 batches byte for byte)."""

import struct
from dataclasses import dataclass
from pathlib import Path

CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


@dataclass(frozen=True)
class BatchHeader:
    base_offset: int
    size: int  # whole batch, offset and length fields included
    codec: int
    timestamp_type: int  # 0 CreateTime, 1 LogAppendTime
    last_offset_delta: int
    max_timestamp: int
    transactional: bool = False
    control: bool = False  # a transaction marker


def _segment_batches(data: bytes) -> tuple[list[BatchHeader], int]:
    """The batch headers of one `.log` file and the bytes they take. The active segment may
    hold zeros written ahead of small appends while the broker runs; a zero batch length is
    where the data ends."""
    out = []
    pos = 0
    while pos + 61 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        if length == 0:
            break
        attributes, last_delta, _first_ts, max_ts = struct.unpack_from(">hiqq", data, pos + 21)
        out.append(BatchHeader(base, 12 + length, attributes & 7, (attributes >> 3) & 1,
                               last_delta, max_ts, bool(attributes & 0x10),
                               bool(attributes & 0x20)))
        pos += 12 + length
    return out, pos


def batches(partition_dir: Path) -> list[BatchHeader]:
    out = []
    for log in sorted(Path(partition_dir).glob("*.log")):
        out.extend(_segment_batches(log.read_bytes())[0])
    return out


def data_bytes(partition_dir: Path) -> int:
    """Bytes of record batches in a partition's `.log` files (not counting zeros the
    active segment holds ahead of its data)."""
    return sum(_segment_batches(log.read_bytes())[1]
               for log in Path(partition_dir).glob("*.log"))


def varint_size(v: int) -> int:
    v = (v << 1) ^ (v >> 63)
    n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


def single_record_batch_size(value_len: int) -> int:
    """Bytes of an uncompressed v2 batch holding one record with a null key, no headers and
    timestamp/offset deltas 0: what max.message.bytes is compared against."""
    body = 1 + 1 + 1 + varint_size(-1) + varint_size(value_len) + value_len + varint_size(0)
    return 61 + varint_size(body) + body
