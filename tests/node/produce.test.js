'use strict'
// kafkajs producers against sluice; kcat (librdkafka) reads back what was written, so every
// record is checked by a second, independent client: offsets, keys, values, headers,
// timestamps, compression codecs, LogAppendTime and the max.message.bytes limit.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { describe, test } = require('node:test')
const { Partitioners } = require('kafkajs')

const { useBroker, loadCodecs, kcatRead, uniqueTopic, CompressionTypes } = require('./support')

const codecMissing = loadCodecs()

/** Explicit CreateTime timestamps: an hour ago, one millisecond apart (inside retention). */
const BASE_TS = Date.now() - 3600 * 1000

/** Where kafkajs's default partitioner puts a keyed (or explicitly placed) message. */
function partitionOf(topic, numPartitions, message) {
  const partitionMetadata = Array.from({ length: numPartitions }, (_, i) => ({
    partitionId: i,
    leader: 0,
  }))
  return Partitioners.DefaultPartitioner()({ topic, partitionMetadata, message })
}

/**
 * The record batches in a partition's first segment file: base offset, record count and
 * compression codec (attributes & 7) of each, parsed from the Kafka v2 batch headers.
 */
function batchesOnDisk(broker, topic, partition) {
  const file = path.join(broker.dataDir, `${topic}-${partition}`, '00000000000000000000.log')
  const buf = fs.readFileSync(file)
  const batches = []
  for (let pos = 0; pos + 61 <= buf.length; ) {
    const length = buf.readInt32BE(pos + 8)
    if (length <= 0) break
    batches.push({
      baseOffset: Number(buf.readBigInt64BE(pos)),
      codec: buf.readInt16BE(pos + 21) & 7,
      records: buf.readInt32BE(pos + 57),
    })
    pos += 12 + length
  }
  return batches
}

/** What kcat shows for a record, in a form easy to compare. */
const view = (r) => ({
  offset: r.offset,
  key: r.key,
  value: r.payload,
  tstype: r.tstype,
  ts: r.ts,
  headers: r.headers,
})

describe('kafkajs producer', () => {
  const ctx = useBroker()

  test('keyed messages with headers and timestamps land at the acknowledged offsets', async () => {
    const topic = uniqueTopic('orders')
    const admin = await ctx.admin()
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] }), true)
    const producer = await ctx.producer()

    const expected = [[], [], []] // per partition, in offset order: what kcat must show
    let n = 0
    for (let round = 0; round < 4; round++) {
      const messages = []
      for (let i = 0; i < 10; i++, n++) {
        const m = {
          key: `customer-${n % 7}`,
          value: JSON.stringify({ n, round, amount: n * 3 }),
          timestamp: String(BASE_TS + n),
          headers: { source: 'kafkajs', seq: String(n), multi: ['a', `b${n}`] },
        }
        if (n % 10 === 9) m.partition = 2 // an explicit partition wins over the key
        messages.push(m)
      }
      const sentTo = [[], [], []]
      for (const m of messages) sentTo[partitionOf(topic, 3, m)].push(m)

      const metadata = await producer.send({ topic, acks: -1, messages })

      const written = sentTo.flatMap((msgs, p) => (msgs.length ? [p] : []))
      assert.deepEqual(metadata.map((md) => md.partition).sort(), written, `round ${round}: partitions`)
      for (const md of metadata) {
        assert.equal(md.topicName, topic)
        assert.equal(md.errorCode, 0)
        assert.equal(
          md.baseOffset,
          String(expected[md.partition].length),
          `round ${round}: base offset of partition ${md.partition}`
        )
        assert.equal(md.logAppendTime, '-1', 'CreateTime topic: no log append time')
        assert.equal(md.logStartOffset, '0')
      }
      sentTo.forEach((msgs, p) => expected[p].push(...msgs))
    }
    assert.ok(expected.every((msgs) => msgs.length > 0), 'the keys spread over all 3 partitions')

    for (let partition = 0; partition < 3; partition++) {
      const records = await kcatRead(ctx.broker, topic, partition)
      assert.deepEqual(
        records.map(view),
        expected[partition].map((m, offset) => ({
          offset,
          key: m.key,
          value: m.value,
          tstype: 'create',
          ts: Number(m.timestamp),
          headers: [
            ['source', 'kafkajs'],
            ['seq', m.headers.seq],
            ['multi', 'a'],
            ['multi', m.headers.multi[1]],
          ],
        })),
        `partition ${partition} as kcat reads it`
      )
    }

    const offsets = await admin.fetchTopicOffsets(topic)
    assert.deepEqual(
      offsets.map(({ partition, low, high }) => ({ partition, low, high })).sort((a, b) => a.partition - b.partition),
      expected.map((msgs, partition) => ({ partition, low: '0', high: String(msgs.length) }))
    )
  })

  test('acks=0 sends get no response but are written, in order, before later sends', async () => {
    const topic = uniqueTopic('fire-and-forget')
    const admin = await ctx.admin()
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
    const producer = await ctx.producer()
    for (let i = 0; i < 5; i++) {
      const result = await producer.send({ topic, acks: 0, messages: [{ key: `k${i}`, value: `acks0-${i}` }] })
      assert.deepEqual(result, [], 'acks=0: no RecordMetadata')
    }
    // Requests on a connection are handled in order: this acks=-1 send lands after them.
    const [md] = await producer.send({ topic, acks: -1, messages: [{ key: 'last', value: 'acks-all' }] })
    assert.equal(md.baseOffset, '5')
    const records = await kcatRead(ctx.broker, topic, 0)
    assert.deepEqual(
      records.map((r) => [r.offset, r.payload]),
      [0, 1, 2, 3, 4].map((i) => [i, `acks0-${i}`]).concat([[5, 'acks-all']])
    )
  })

  test('sendBatch writes to several topics in one request', async () => {
    const a = uniqueTopic('batch-a')
    const b = uniqueTopic('batch-b')
    const admin = await ctx.admin()
    await admin.createTopics({ topics: [{ topic: a, numPartitions: 2 }, { topic: b, numPartitions: 1 }] })
    const producer = await ctx.producer()
    const metadata = await producer.sendBatch({
      acks: -1,
      topicMessages: [
        { topic: a, messages: [{ partition: 0, value: 'a0' }, { partition: 1, value: 'a1' }, { partition: 1, value: 'a1b' }] },
        { topic: b, messages: [{ partition: 0, value: 'b0' }] },
      ],
    })
    assert.deepEqual(
      metadata.map((m) => [m.topicName, m.partition, m.errorCode, m.baseOffset]).sort(),
      [[a, 0, 0, '0'], [a, 1, 0, '0'], [b, 0, 0, '0']].sort()
    )
    assert.deepEqual((await kcatRead(ctx.broker, a, 1)).map((r) => r.payload), ['a1', 'a1b'])
    assert.deepEqual((await kcatRead(ctx.broker, b, 0)).map((r) => r.payload), ['b0'])
  })

  test('a 700 kB record (under the 1 MiB default limit) round-trips', async () => {
    const topic = uniqueTopic('big')
    const admin = await ctx.admin()
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
    const producer = await ctx.producer()
    const value = Array.from({ length: 700 * 1024 }, (_, i) => String.fromCharCode(97 + ((i * 7919) % 26))).join('')
    const [md] = await producer.send({ topic, acks: -1, messages: [{ key: 'big', value }] })
    assert.equal(md.baseOffset, '0')
    const [record] = await kcatRead(ctx.broker, topic, 0)
    assert.equal(record.payload.length, value.length)
    assert.equal(record.payload, value)
  })

  test('null keys, empty values, tombstones and binary data round-trip', async () => {
    const topic = uniqueTopic('odd-values')
    const admin = await ctx.admin()
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
    const producer = await ctx.producer()
    const messages = [
      { key: null, value: 'no key' },
      { key: 'k-empty', value: '' },
      { key: 'k-tombstone', value: null },
      { key: 'k-unicode', value: 'grüße 🚰', headers: { 'h-ü': 'wert ✓' } },
      { key: Buffer.from('k-bin'), value: Buffer.from([0, 1, 2, 255, 254]) },
    ]
    const [md] = await producer.send({ topic, acks: 1, messages })
    assert.equal(md.baseOffset, '0')
    const records = await kcatRead(ctx.broker, topic, 0)
    assert.equal(records.length, 5)
    assert.deepEqual(
      records.map((r) => [r.offset, r.key, r.payload]),
      [
        [0, null, 'no key'],
        [1, 'k-empty', ''],
        [2, 'k-tombstone', null],
        [3, 'k-unicode', 'grüße 🚰'],
        [4, 'k-bin', records[4].payload], // kcat's JSON of raw bytes is checked below
      ]
    )
    assert.deepEqual(records[3].headers, [['h-ü', 'wert ✓']])
    // kcat -J escapes binary payloads; -f '%S' prints the value size, which must be 5.
    const sizes = await require('./support').runKcat([
      '-b', ctx.broker.bootstrap, '-C', '-t', topic, '-p', '0', '-o', '4', '-e', '-q', '-f', '%S\n',
    ])
    assert.equal(sizes.trim(), '5')
  })

  for (const [name, type] of [
    ['gzip', CompressionTypes.GZIP],
    ['snappy', CompressionTypes.Snappy],
    ['lz4', CompressionTypes.LZ4],
    ['zstd', CompressionTypes.ZSTD],
  ]) {
    test(`${name}-compressed batches are stored and decoded by kcat`, async (t) => {
      if (codecMissing[name]) return t.skip(codecMissing[name])
      const topic = uniqueTopic(`codec-${name}`)
      const admin = await ctx.admin()
      await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
      const producer = await ctx.producer()
      const expected = []
      for (let batch = 0; batch < 3; batch++) {
        const messages = Array.from({ length: 50 }, (_, i) => {
          const n = batch * 50 + i
          return {
            key: `k${n}`,
            value: `${name} record ${n} `.repeat(20), // compressible
            timestamp: String(BASE_TS + n),
            headers: { n: String(n) },
          }
        })
        const [md] = await producer.send({ topic, acks: -1, compression: type, messages })
        assert.equal(md.errorCode, 0)
        assert.equal(md.baseOffset, String(batch * 50), `batch ${batch}`)
        expected.push(...messages)
      }
      const records = await kcatRead(ctx.broker, topic, 0)
      assert.deepEqual(
        records.map(view),
        expected.map((m, offset) => ({
          offset,
          key: m.key,
          value: m.value,
          tstype: 'create',
          ts: Number(m.timestamp),
          headers: [['n', m.headers.n]],
        }))
      )
      // The segment holds the producer's batches as sent: still compressed with this codec.
      assert.deepEqual(
        batchesOnDisk(ctx.broker, topic, 0).map((b) => [b.baseOffset, b.records, b.codec]),
        [[0, 50, type], [50, 50, type], [100, 50, type]]
      )
    })
  }

  test('LogAppendTime topics stamp the broker time, reported to the producer and to kcat', async () => {
    const topic = uniqueTopic('append-time')
    const admin = await ctx.admin()
    await admin.createTopics({
      topics: [
        {
          topic,
          numPartitions: 1,
          configEntries: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }],
        },
      ],
    })
    const producer = await ctx.producer()
    const before = Date.now()
    const [md] = await producer.send({
      topic,
      acks: -1,
      messages: [
        { key: 'a', value: '1', timestamp: String(BASE_TS) },
        { key: 'b', value: '2', timestamp: String(BASE_TS + 1) },
      ],
    })
    const after = Date.now()
    const appendTime = Number(md.logAppendTime)
    assert.ok(appendTime >= before - 1000 && appendTime <= after + 1000, `logAppendTime ${md.logAppendTime}`)
    const records = await kcatRead(ctx.broker, topic, 0)
    assert.deepEqual(
      records.map((r) => [r.offset, r.key, r.tstype, r.ts]),
      [
        [0, 'a', 'logappend', appendTime],
        [1, 'b', 'logappend', appendTime],
      ]
    )
  })

  test('a message over max.message.bytes is refused with MESSAGE_TOO_LARGE', async () => {
    const topic = uniqueTopic('small-messages')
    const admin = await ctx.admin()
    await admin.createTopics({
      topics: [{ topic, numPartitions: 1, configEntries: [{ name: 'max.message.bytes', value: '10000' }] }],
    })
    const producer = await ctx.producer({ retry: { retries: 0 } })
    const [ok] = await producer.send({ topic, acks: -1, messages: [{ key: 'small', value: 'x'.repeat(5000) }] })
    assert.equal(ok.baseOffset, '0')
    await assert.rejects(
      producer.send({ topic, acks: -1, messages: [{ key: 'big', value: 'x'.repeat(20000) }] }),
      (e) => {
        const types = [e.type, e.originalError?.type, ...(e.errors || []).map((x) => x.type)]
        assert.ok(types.includes('MESSAGE_TOO_LARGE'), `expected MESSAGE_TOO_LARGE, got ${e.name}: ${e.message} (${types})`)
        return true
      }
    )
    // Nothing of the refused batch was written; the partition still takes small records.
    const [after] = await producer.send({ topic, acks: -1, messages: [{ key: 'small2', value: 'y' }] })
    assert.equal(after.baseOffset, '1')
    // As in Kafka, the limit applies to the batch as sent: 20 kB that gzip to a few hundred
    // bytes are accepted.
    const [zipped] = await producer.send({
      topic,
      acks: -1,
      compression: CompressionTypes.GZIP,
      messages: [{ key: 'zipped', value: 'x'.repeat(20000) }],
    })
    assert.equal(zipped.baseOffset, '2')
    const records = await kcatRead(ctx.broker, topic, 0)
    assert.deepEqual(records.map((r) => [r.offset, r.key, r.payload.length]), [
      [0, 'small', 5000],
      [1, 'small2', 1],
      [2, 'zipped', 20000],
    ])
  })
})
