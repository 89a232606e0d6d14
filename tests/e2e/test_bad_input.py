"""Bad input from the network: each case gets the precise Kafka error or a closed connection,
the broker keeps serving everyone else, and nothing acknowledged is lost."""

import os
import struct

import pytest

from kwire import (Conn, create_topics_v2, create_topics_v2_result, metadata_v1, produce_v3,
                   produce_v3_result, record_batch, request)

CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS = 2, 10, 17, 37
UNSUPPORTED_VERSION = 35


@pytest.fixture
def seeded(broker):
    """A broker with one acknowledged record in topic 'safe' that every test re-reads."""
    c = Conn(broker.port)
    c.send(create_topics_v2("safe", 1))
    assert create_topics_v2_result(c.recv_frame())[0] == 0
    c.send(produce_v3("safe", 0, record_batch([(b"k", b"acknowledged")])))
    assert produce_v3_result(c.recv_frame()) == (0, 0)
    c.close()
    yield broker
    # Whatever happened, the broker still answers and the record is still there.
    c = Conn(broker.port)
    c.send(produce_v3("safe", 0, record_batch([(b"k2", b"after")])))
    assert produce_v3_result(c.recv_frame()) == (0, 1), broker.log()[-2000:]
    c.close()


def expect_closed(broker, payload: bytes) -> None:
    c = Conn(broker.port)
    c.send(payload)
    assert c.closed_by_peer(), "the broker kept the connection open after bad input"
    c.close()


def test_garbage_bytes_close_the_connection(seeded):
    """A frame of random bytes (its API key past any Kafka defines) closes the connection.
    The length prefix is the frame's own: a random one that happens to be plausible
    (a few percent of draws) rightly makes the broker wait for that many bytes, as Kafka
    does, and the over-long and negative lengths have their own test below."""
    api_key = struct.pack(">h", 0x4000 + int.from_bytes(os.urandom(2), "big") % 0x3FFF)
    body = api_key + os.urandom(62)
    expect_closed(seeded, struct.pack(">i", len(body)) + body + struct.pack(">i", 12)
                  + os.urandom(12))


def test_length_over_socket_request_max_bytes_closes_before_allocating(seeded):
    expect_closed(seeded, struct.pack(">i", 0x7FFFFFFF) + b"\x00" * 16)
    expect_closed(seeded, struct.pack(">i", -5))
    assert "socket.request.max.bytes" in seeded.log()


def test_truncated_frame_then_disconnect_leaves_the_broker_serving(seeded):
    c = Conn(seeded.port)
    c.send(struct.pack(">i", 100) + b"\x00\x03\x00\x01")
    c.close()


def test_unknown_api_key_closes(seeded):
    expect_closed(seeded, request(9999, 0, b""))
    assert "unknown API key 9999" in seeded.log()


def test_unsupported_api_versions_version_gets_error_35_and_the_list(seeded):
    c = Conn(seeded.port)
    c.send(request(18, 99, b""))
    body = c.recv_frame()
    correlation, error = struct.unpack_from(">ih", body)
    assert (correlation, error) == (1, UNSUPPORTED_VERSION)
    (count,) = struct.unpack_from(">i", body, 6)
    apis = {struct.unpack_from(">hhh", body, 10 + 6 * i)[0] for i in range(count)}
    assert {0, 1, 3, 18} <= apis
    c.close()


def test_unsupported_version_of_another_api_closes(seeded):
    expect_closed(seeded, request(0, 1, b""))  # Produce v1 (old message format)
    assert "not supported" in seeded.log()


def test_impossible_array_length_does_not_take_the_broker_down(seeded):
    # Metadata v1 claiming two billion topics in a 4-byte body.
    expect_closed(seeded, request(3, 1, struct.pack(">i", 0x7FFFFFF0)))
    expect_closed(seeded, request(19, 2, struct.pack(">i", 0x7FFFFFF0)))


def test_wrong_crc_is_corrupt_message_and_nothing_is_written(seeded):
    batch = bytearray(record_batch([(b"k", b"v")]))
    batch[-1] ^= 0xFF
    c = Conn(seeded.port)
    c.send(produce_v3("safe", 0, bytes(batch)))
    assert produce_v3_result(c.recv_frame())[0] == CORRUPT_MESSAGE
    c.close()


def test_truncated_batch_is_corrupt_message(seeded):
    batch = record_batch([(b"k", b"v")])
    c = Conn(seeded.port)
    c.send(produce_v3("safe", 0, batch[:-3]))
    assert produce_v3_result(c.recv_frame())[0] == CORRUPT_MESSAGE
    c.close()


def test_batch_over_max_message_bytes_is_message_too_large(seeded):
    big = record_batch([(b"k", b"v")], pad_value_to=1_100_000)
    c = Conn(seeded.port)
    c.send(produce_v3("safe", 0, big))
    assert produce_v3_result(c.recv_frame())[0] == MESSAGE_TOO_LARGE
    c.close()


def test_invalid_topic_name_and_negative_partitions(seeded):
    c = Conn(seeded.port)
    c.send(create_topics_v2("bad name!", 1))
    code, message = create_topics_v2_result(c.recv_frame())
    assert code == INVALID_TOPIC_EXCEPTION and "bad name!" in message
    c.send(create_topics_v2("fine", -3))
    code, message = create_topics_v2_result(c.recv_frame())
    assert code == INVALID_PARTITIONS and "-3" in message
    c.send(metadata_v1(["fine"]))  # still usable after errors: the topic was not created
    assert c.recv_frame() is not None
    c.close()
