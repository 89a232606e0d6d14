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
