"""Hand-encoded Kafka requests for tests that must send what no client library would:
corrupt batches, impossible lengths, unknown APIs. Encodings follow the Kafka protocol guide.
"""

import socket
import struct
import time


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as Kafka record batches use."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def varint(v: int) -> bytes:
    v = (v << 1) ^ (v >> 63)
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def record_batch(records: list[tuple[bytes | None, bytes | None]], ts: int = 1_700_000_000_000,
                 pad_value_to: int = 0, producer_id: int = -1, producer_epoch: int = -1,
                 base_sequence: int = -1) -> bytes:
    """An uncompressed v2 batch of (key, value) records with a correct CRC; an idempotent
    producer's batch when `producer_id` (with its epoch and first sequence) is given."""
    body = bytearray()
    for i, (key, value) in enumerate(records):
        if pad_value_to and value is not None:
            value = value.ljust(pad_value_to, b".")
        rec = bytearray(b"\x00") + varint(0) + varint(i)
        rec += varint(-1) if key is None else varint(len(key)) + key
        rec += varint(-1) if value is None else varint(len(value)) + value
        rec += varint(0)
        body += varint(len(rec)) + rec
    after_crc = struct.pack(">hiqqqhii", 0, len(records) - 1, ts, ts, producer_id, producer_epoch,
                            base_sequence, len(records)) + body
    crc = crc32c(after_crc)
    after_len = struct.pack(">ib", -1, 2) + struct.pack(">I", crc) + after_crc
    return struct.pack(">qi", 0, len(after_len)) + after_len


def string(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def request(api_key: int, version: int, body: bytes, correlation_id: int = 1,
            client_id: str = "kwire") -> bytes:
    """A framed request with a v1 (non-flexible) header."""
    header = struct.pack(">hhi", api_key, version, correlation_id) + string(client_id)
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def produce_v3(topic: str, partition: int, batch: bytes, acks: int = -1) -> bytes:
    body = string(None) + struct.pack(">hi", acks, 30000) + struct.pack(">i", 1) + string(topic)
    body += struct.pack(">i", 1) + struct.pack(">i", partition) + struct.pack(">i", len(batch)) + batch
    return request(0, 3, body)


def create_topics_v2(name: str, partitions: int, rf: int = 1) -> bytes:
    body = struct.pack(">i", 1) + string(name) + struct.pack(">ih", partitions, rf)
    body += struct.pack(">i", 0) + struct.pack(">i", 0)  # no assignments, no configs
    body += struct.pack(">i?", 30000, False)
    return request(19, 2, body)


def metadata_v1(topics: list[str]) -> bytes:
    body = struct.pack(">i", len(topics)) + b"".join(string(t) for t in topics)
    return request(3, 1, body)


class Conn:
    """A raw connection that reads whole response frames."""

    def __init__(self, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_frame(self) -> bytes | None:
        """The next response body after its length, or None if the broker closed."""
        head = self._recv_exact(4)
        if head is None:
            return None
        (n,) = struct.unpack(">i", head)
        return self._recv_exact(n)

    def closed_by_peer(self, wait: float = 5.0) -> bool:
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def _recv_exact(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def close(self) -> None:
        self.sock.close()


class Reader:
    """Decodes big-endian fields of a response body in order."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        vals = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return vals if len(vals) > 1 else vals[0]

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s


def produce_v3_result(body: bytes) -> tuple[int, int]:
    """(error_code, base_offset) of the single partition of a Produce v3 response."""
    r = Reader(body)
    r.take(">i")  # correlation id
    assert r.take(">i") == 1
    r.string()
    assert r.take(">i") == 1
    _partition, error, base_offset, _append_time = r.take(">ihqq")
    return error, base_offset


def create_topics_v2_result(body: bytes) -> tuple[int, str | None]:
    r = Reader(body)
    r.take(">i")  # correlation id
    r.take(">i")  # throttle
    assert r.take(">i") == 1
    r.string()
    return r.take(">h"), r.string()


def wait_until(cond, timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


# ----------------------------------------------------------------------------------------
# Transactions (KIP-98, KIP-447, KIP-664): the coordinator APIs, hand-encoded from the Kafka
# protocol guide (flexible versions with compact strings/arrays and tagged fields), plus
# transactional produce, read_committed Fetch and ListOffsets, and a record-batch parser
# that shows control batches (commit/abort markers).
# ----------------------------------------------------------------------------------------

from dataclasses import dataclass as _dataclass  # noqa: E402

FIND_COORDINATOR, INIT_PRODUCER_ID, ADD_PARTITIONS_TO_TXN = 10, 22, 24
ADD_OFFSETS_TO_TXN, END_TXN, TXN_OFFSET_COMMIT = 25, 26, 28
DESCRIBE_TRANSACTIONS, LIST_TRANSACTIONS = 65, 66
READ_UNCOMMITTED, READ_COMMITTED = 0, 1
ATTR_TRANSACTIONAL, ATTR_CONTROL = 0x10, 0x20
CONTROL_ABORT, CONTROL_COMMIT = 0, 1


def uvarint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


class Enc:
    """Builds a request body field by field; `flexible` selects compact strings and arrays
    and writes tagged-field sections where `tags()` is called (a no-op otherwise)."""

    def __init__(self, flexible: bool):
        self.flex, self.buf = flexible, bytearray()

    def pack(self, fmt: str, *vals) -> "Enc":
        self.buf += struct.pack(fmt, *vals)
        return self

    def str(self, s: str | None) -> "Enc":
        if not self.flex:
            self.buf += string(s)
        elif s is None:
            self.buf += uvarint(0)
        else:
            b = s.encode()
            self.buf += uvarint(len(b) + 1) + b
        return self

    def array(self, items, each) -> "Enc":
        items = list(items)
        self.buf += uvarint(len(items) + 1) if self.flex else struct.pack(">i", len(items))
        for it in items:
            each(self, it)
        return self

    def tags(self) -> "Enc":
        if self.flex:
            self.buf += b"\x00"
        return self

    def done(self) -> bytes:
        return bytes(self.buf)


class Dec(Reader):
    """Reads a response body; flexible versions have compact strings/arrays and tags."""

    def __init__(self, data: bytes, flexible: bool):
        super().__init__(data)
        self.flex = flexible

    def uvarint(self) -> int:
        shift = v = 0
        while True:
            b = self.data[self.pos]
            self.pos += 1
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7

    def str(self) -> str | None:
        if not self.flex:
            return self.string()
        n = self.uvarint() - 1
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def array(self, each) -> list | None:
        n = self.uvarint() - 1 if self.flex else self.take(">i")
        if n < 0:
            return None
        return [each(self) for _ in range(n)]

    def tags(self) -> None:
        if self.flex:
            for _ in range(self.uvarint()):
                self.uvarint()
                self.pos += self.uvarint()

    def blob(self) -> bytes | None:
        """A non-flexible nullable BYTES/RECORDS field (int32 length)."""
        n = self.take(">i")
        if n < 0:
            return None
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return bytes(b)


def call(conn: Conn, api_key: int, version: int, body: bytes, flexible: bool,
         correlation_id: int = 7, client_id: str = "kwire") -> Dec:
    """Sends one request (header v2 when `flexible`, v1 otherwise) and returns a decoder
    positioned after the response header."""
    if flexible:
        header = struct.pack(">hhi", api_key, version, correlation_id) + string(client_id) + b"\x00"
        payload = header + body
        conn.send(struct.pack(">i", len(payload)) + payload)
    else:
        conn.send(request(api_key, version, body, correlation_id, client_id))
    frame = conn.recv_frame()
    assert frame is not None, f"the broker closed the connection on api {api_key} v{version}"
    d = Dec(frame, flexible)
    assert d.take(">i") == correlation_id
    d.tags()
    return d


def find_coordinator(conn: Conn, key: str, key_type: int = 1) -> tuple[int, int, str, int]:
    """FindCoordinator v1 (key_type 1 = transaction): (error, node id, host, port)."""
    d = call(conn, FIND_COORDINATOR, 1, Enc(False).str(key).pack(">b", key_type).done(), False)
    d.take(">i")  # throttle
    error = d.take(">h")
    d.str()  # error message
    node = d.take(">i")
    host = d.str()
    return error, node, host, d.take(">i")


def init_producer_id(conn: Conn, transactional_id: str | None, timeout_ms: int = 60000,
                     version: int = 4, producer_id: int = -1,
                     producer_epoch: int = -1) -> tuple[int, int, int]:
    """InitProducerId v0-4: (error, producer id, epoch)."""
    flex = version >= 2
    e = Enc(flex).str(transactional_id).pack(">i", timeout_ms)
    if version >= 3:
        e.pack(">qh", producer_id, producer_epoch)
    d = call(conn, INIT_PRODUCER_ID, version, e.tags().done(), flex)
    d.take(">i")
    return d.take(">h"), d.take(">q"), d.take(">h")


def _topics_with_partitions(e: Enc, item):
    topic, parts = item
    e.str(topic).array(parts, lambda e2, p: e2.pack(">i", p)).tags()


def _partition_errors(d) -> dict:
    """Reads `[topic name, [partition, error code]]` (AddPartitionsToTxn and TxnOffsetCommit
    responses): {(topic, partition): error}."""
    out = {}

    def topic(d):
        name = d.str()

        def part(d):
            p, err = d.take(">ih")
            d.tags()
            out[(name, p)] = err
        d.array(part)
        d.tags()
    d.array(topic)
    return out


def add_partitions_to_txn(conn: Conn, transactional_id: str, producer_id: int, epoch: int,
                          parts: dict[str, list[int]], version: int = 3) -> dict:
    """AddPartitionsToTxn v0-3: {(topic, partition): error}."""
    flex = version >= 3
    e = Enc(flex).str(transactional_id).pack(">qh", producer_id, epoch)
    e.array(parts.items(), _topics_with_partitions).tags()
    d = call(conn, ADD_PARTITIONS_TO_TXN, version, e.done(), flex)
    d.take(">i")
    return _partition_errors(d)


def add_offsets_to_txn(conn: Conn, transactional_id: str, producer_id: int, epoch: int,
                       group: str, version: int = 3) -> int:
    """AddOffsetsToTxn v0-3: the error code."""
    flex = version >= 3
    e = Enc(flex).str(transactional_id).pack(">qh", producer_id, epoch).str(group).tags()
    d = call(conn, ADD_OFFSETS_TO_TXN, version, e.done(), flex)
    d.take(">i")
    return d.take(">h")


def end_txn(conn: Conn, transactional_id: str, producer_id: int, epoch: int, commit: bool,
            version: int = 3) -> int:
    """EndTxn v0-3: the error code."""
    flex = version >= 3
    e = Enc(flex).str(transactional_id).pack(">qh?", producer_id, epoch, commit).tags()
    d = call(conn, END_TXN, version, e.done(), flex)
    d.take(">i")
    return d.take(">h")


def txn_offset_commit(conn: Conn, transactional_id: str, group: str, producer_id: int,
                      epoch: int, offsets: dict[tuple[str, int], int], generation: int = -1,
                      member_id: str = "", instance_id: str | None = None,
                      version: int = 3) -> dict:
    """TxnOffsetCommit v0-3: {(topic, partition): error}."""
    flex = version >= 3
    e = Enc(flex).str(transactional_id).str(group).pack(">qh", producer_id, epoch)
    if version >= 3:
        e.pack(">i", generation).str(member_id).str(instance_id)
    by_topic: dict[str, list[tuple[int, int]]] = {}
    for (t, p), o in offsets.items():
        by_topic.setdefault(t, []).append((p, o))

    def part(e, po):
        e.pack(">iq", *po)
        if version >= 2:
            e.pack(">i", -1)  # committed leader epoch
        e.str("").tags()  # metadata
    e.array(by_topic.items(), lambda e, tp: e.str(tp[0]).array(tp[1], part).tags()).tags()
    d = call(conn, TXN_OFFSET_COMMIT, version, e.done(), flex)
    d.take(">i")
    return _partition_errors(d)


@_dataclass(frozen=True)
class TxnDescription:
    error: int
    transactional_id: str
    state: str
    timeout_ms: int
    start_time_ms: int
    producer_id: int
    producer_epoch: int
    partitions: frozenset  # {(topic, partition)}


def describe_transactions(conn: Conn, ids: list[str]) -> dict[str, TxnDescription]:
    """DescribeTransactions v0 (flexible)."""
    e = Enc(True).array(ids, lambda e, i: e.str(i)).tags()
    d = call(conn, DESCRIBE_TRANSACTIONS, 0, e.done(), True)
    d.take(">i")

    def state(d):
        error = d.take(">h")
        tid, st = d.str(), d.str()
        timeout, start, pid, epoch = d.take(">i"), d.take(">q"), d.take(">q"), d.take(">h")
        parts = set()

        def topic(d):
            name = d.str()
            parts.update((name, p) for p in d.array(lambda d: d.take(">i")))
            d.tags()
        d.array(topic)
        d.tags()
        return TxnDescription(error, tid, st, timeout, start, pid, epoch, frozenset(parts))
    return {t.transactional_id: t for t in d.array(state)}


def list_transactions(conn: Conn, states: list[str] = (), producer_ids: list[int] = (),
                      duration_ms: int = -1, version: int = 0):
    """ListTransactions v0-1 (flexible): (error, unknown state filters,
    {transactional id: (producer id, state)})."""
    e = Enc(True).array(states, lambda e, s: e.str(s))
    e.array(producer_ids, lambda e, p: e.pack(">q", p))
    if version >= 1:
        e.pack(">q", duration_ms)
    d = call(conn, LIST_TRANSACTIONS, version, e.tags().done(), True)
    d.take(">i")
    error = d.take(">h")
    unknown = d.array(lambda d: d.str())

    def state(d):
        tid, pid, st = d.str(), d.take(">q"), d.str()
        d.tags()
        return tid, (pid, st)
    return error, unknown, dict(d.array(state))


def transactional(batch: bytes) -> bytes:
    """The same v2 batch with the isTransactional attribute set and its CRC recomputed."""
    b = bytearray(batch)
    (attributes,) = struct.unpack_from(">h", b, 21)
    struct.pack_into(">h", b, 21, attributes | ATTR_TRANSACTIONAL)
    struct.pack_into(">I", b, 17, crc32c(bytes(b[21:])))
    return bytes(b)


def produce_v3_txn(transactional_id: str | None, topic: str, partition: int,
                   batch: bytes) -> bytes:
    """A Produce v3 request (acks=-1) carrying a transactional id."""
    body = string(transactional_id) + struct.pack(">hi", -1, 30000) + struct.pack(">i", 1)
    body += string(topic) + struct.pack(">i", 1) + struct.pack(">i", partition)
    body += struct.pack(">i", len(batch)) + batch
    return request(0, 3, body)


@_dataclass(frozen=True)
class FetchedPartition:
    error: int
    high_watermark: int
    last_stable_offset: int
    aborted: list | None  # [(producer id, first offset)] or None
    records: bytes


def fetch_v4(conn: Conn, topic: str, partition: int, offset: int, isolation: int,
             max_bytes: int = 1 << 20) -> FetchedPartition:
    """One partition through Fetch v4 (the first version with isolation_level, the last
    stable offset and aborted transactions), without waiting for data."""
    e = Enc(False).pack(">iiiib", -1, 0, 0, max_bytes, isolation)
    e.array([topic], lambda e, t: e.str(t).array(
        [partition], lambda e, p: e.pack(">iqi", p, offset, max_bytes)))
    d = call(conn, 1, 4, e.done(), False)
    d.take(">i")  # throttle

    def part(d):
        index, error, hw, lso = d.take(">ihqq")
        aborted = d.array(lambda d: d.take(">qq"))
        return index, FetchedPartition(error, hw, lso, aborted, d.blob() or b"")
    ((_name, ((index, got),)),) = d.array(lambda d: (d.str(), d.array(part)))
    assert index == partition
    return got


def list_offsets_v2(conn: Conn, topic: str, partition: int, timestamp: int,
                    isolation: int) -> tuple[int, int]:
    """ListOffsets v2 (timestamp -1 latest, -2 earliest): (error, offset)."""
    e = Enc(False).pack(">ib", -1, isolation)
    e.array([topic], lambda e, t: e.str(t).array(
        [partition], lambda e, p: e.pack(">iq", p, timestamp)))
    d = call(conn, 2, 2, e.done(), False)
    d.take(">i")
    (t,) = d.array(lambda d: (d.str(), d.array(lambda d: d.take(">ihqq"))))
    ((_p, error, _ts, offset),) = t[1]
    return error, offset


@_dataclass(frozen=True)
class Batch:
    base_offset: int
    last_offset: int
    attributes: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    count: int
    control_type: int | None  # CONTROL_ABORT / CONTROL_COMMIT for a marker, else None

    @property
    def transactional(self) -> bool:
        return bool(self.attributes & ATTR_TRANSACTIONAL)

    @property
    def control(self) -> bool:
        return bool(self.attributes & ATTR_CONTROL)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = v = 0
    while True:
        b = data[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return (v >> 1) ^ -(v & 1), pos
        shift += 7


def parse_batches(data: bytes) -> list[Batch]:
    """The v2 batch headers in Fetch records (or a .log file); a partial batch at the end
    (Fetch may cut one) is ignored. A control batch's type comes from its record's key."""
    out, pos = [], 0
    while pos + 61 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        if pos + 12 + length > len(data):
            break
        attributes, last_delta = struct.unpack_from(">hi", data, pos + 21)
        pid, epoch, seq, count = struct.unpack_from(">qhii", data, pos + 43)
        control_type = None
        if attributes & ATTR_CONTROL and count:
            p = pos + 61
            _len, p = _read_varint(data, p)
            p += 1  # record attributes
            _ts, p = _read_varint(data, p)
            _od, p = _read_varint(data, p)
            key_len, p = _read_varint(data, p)
            if key_len >= 4:
                _version, control_type = struct.unpack_from(">hh", data, p)
        out.append(Batch(base, base + last_delta, attributes, pid, epoch, seq, count,
                         control_type))
        pos += 12 + length
    return out
