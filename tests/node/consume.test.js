'use strict'
// Where a kafkajs consumer group starts reading, and what it reads: from an offset looked up
// by timestamp (ListOffsets) and sought to; from the log start after DeleteRecords moved it;
// after its committed offset fell out of range (beyond the high watermark, or below the low
// watermark after DeleteRecords), reset per fromBeginning as kafkajs does (earliest when
// true, latest otherwise); and every compression codec kafkajs supports here, decoded by the
// consumer with keys, headers and timestamps intact.
//
// The broker runs with short group timings (GROUP_TEST_ENV), the consumers with matching
// timeouts (CONSUMER_TIMEOUTS, applied by ctx.consumer).

const assert = require('node:assert/strict')
const { describe, test } = require('node:test')

const {
  useBroker,
  loadCodecs,
  skipUnlessAdvertised,
  uniqueTopic,
  uniqueGroup,
  consumedRecord,
  committed,
  waitCommitted,
  highWatermarks,
  lowWatermarks,
  waitFor,
  GROUP_TEST_ENV,
  CompressionTypes,
} = require('./support')

const codecMissing = loadCodecs()

/** Explicit CreateTime timestamps: an hour ago (inside retention). */
const BASE_TS = Date.now() - 3600 * 1000

const range = (from, to) => Array.from({ length: to - from }, (_, i) => from + i)

/**
 * Starts a kafkajs consumer in `groupId` on `topic` (eachMessage, or eachBatch when `batch`)
 * with the default auto-commit. Returns its state, kept current: `messages` (as
 * consumedRecord), `fetches` (FETCH events, i.e. completed fetch requests).
 */
async function startConsumer(ctx, { topic, groupId, fromBeginning, batch = false }) {
  const consumer = await ctx.consumer({ groupId })
  const state = { consumer, groupId, messages: [], fetches: 0 }
  consumer.on(consumer.events.FETCH, () => {
    state.fetches += 1
  })
  await consumer.subscribe({ topics: [topic], fromBeginning })
  const record = (partition, message) => state.messages.push(consumedRecord(partition, message))
  await consumer.run(
    batch
      ? { eachBatch: async ({ batch: b }) => b.messages.forEach((m) => record(b.partition, m)) }
      : { eachMessage: async ({ partition, message }) => record(partition, message) }
  )
  return state
}

/** Offsets `state` consumed on each of `partitions` partitions, in the order consumed. */
const offsetsOf = (state, partitions) =>
  range(0, partitions).map((p) => state.messages.filter((m) => m.partition === p).map((m) => m.offset))

/**
 * Waits until `state`'s group has reset partition `partition` to the latest offset (kafkajs
 * commits -1, "latest", on OFFSET_OUT_OF_RANGE when fromBeginning is false) and a whole fetch
 * has run since, so the reset position was resolved (ListOffsets) before anything new is
 * produced.
 */
async function waitResetToLatest(admin, state, topic, partition) {
  let last = null
  await waitFor(
    `p${partition} of ${state.groupId} reset to latest (-1 committed)`,
    async () => {
      last = await committed(admin, state.groupId, topic)
      return last[partition] === -1
    },
    { state: () => last }
  )
  const seen = state.fetches
  await waitFor('two fetches after the reset', () => state.fetches >= seen + 2)
}

/** Sends `count` records to `partition` in one batch; values `${tag}-${i}`. */
async function produceBatch(producer, topic, partition, count, tag, extra = {}) {
  const messages = range(0, count).map((i) => ({ partition, key: `${tag}-k${i}`, value: `${tag}-${i}` }))
  const [md] = await producer.send({ topic, acks: -1, messages, ...extra })
  return Number(md.baseOffset)
}

describe('kafkajs consumer: starting offsets, resets and codecs', () => {
  const ctx = useBroker({ env: GROUP_TEST_ENV })

  test('a consumer seeks to the offset found by timestamp and starts at the first record at or after it', async () => {
    const topic = uniqueTopic('seek-by-time')
    const admin = await ctx.admin()
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] })
    const producer = await ctx.producer()
    // Per partition 4 batches of 5: record n at BASE_TS + 10n (+ 3 on partition 1).
    const written = [[], []]
    for (let b = 0; b < 4; b++) {
      for (let p = 0; p < 2; p++) {
        const messages = range(b * 5, b * 5 + 5).map((n) => ({
          partition: p,
          key: `p${p}-k${n}`,
          value: `p${p}-v${n}`,
          timestamp: String(BASE_TS + 10 * n + 3 * p),
          headers: { n: String(n) },
        }))
        const [md] = await producer.send({ topic, acks: -1, messages })
        assert.equal(Number(md.baseOffset), b * 5)
        written[p].push(...messages)
      }
    }
    // Inside the second batch: partition 0's first record at or after it is offset 8
    // (BASE_TS + 80), partition 1's is offset 7 (BASE_TS + 73).
    const target = BASE_TS + 71
    const found = (await admin.fetchTopicOffsetsByTimestamp(topic, target)).sort((a, b) => a.partition - b.partition)
    assert.deepEqual(found.map((o) => [o.partition, Number(o.offset)]), [[0, 8], [1, 7]])

    // fromBeginning false: were the seek lost, the consumer would wait at the end, not read.
    const groupId = uniqueGroup('seek-by-time')
    const state = await startConsumer(ctx, { topic, groupId, fromBeginning: false })
    for (const { partition, offset } of found) state.consumer.seek({ topic, partition, offset })
    await waitCommitted(admin, state.groupId, topic, [20, 20])
    for (let p = 0; p < 2; p++) {
      const first = Number(found[p].offset)
      const mine = state.messages.filter((m) => m.partition === p)
      assert.deepEqual(
        mine.map(({ partition, ...rest }) => rest),
        written[p].slice(first).map((m, i) => ({
          offset: first + i,
          key: m.key,
          value: m.value,
          timestamp: m.timestamp,
          headers: m.headers,
        })),
        `partition ${p} from offset ${first}`
      )
      assert.ok(Number(mine[0].timestamp) >= target, 'the first record is at or after the target')
      assert.ok(Number(written[p][first - 1].timestamp) < target, 'the one before it is earlier')
    }
    await state.consumer.disconnect()
  })

  test('after DeleteRecords a new group from the beginning starts at the new low watermark', async (t) => {
    if (await skipUnlessAdvertised(t, ctx.broker, 'DeleteRecords')) return
    const topic = uniqueTopic('consume-trimmed')
    const admin = await ctx.admin()
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] })
    const producer = await ctx.producer()
    for (let b = 0; b < 2; b++) {
      for (let p = 0; p < 2; p++) await produceBatch(producer, topic, p, 5, `old${b}`)
    }
    // See admin.test.js: kafkajs needs the topic's metadata cached to find the leaders.
    await admin.fetchTopicMetadata({ topics: [topic] })
    // Partition 0 from the middle of its second batch, partition 1 entirely.
    await admin.deleteTopicRecords({
      topic,
      partitions: [
        { partition: 0, offset: '7' },
        { partition: 1, offset: '10' },
      ],
    })
    assert.deepEqual(await lowWatermarks(admin, topic), [7, 10])
    assert.equal(await produceBatch(producer, topic, 0, 1, 'new'), 10)
    assert.equal(await produceBatch(producer, topic, 1, 2, 'new'), 10)

    const state = await startConsumer(ctx, { topic, groupId: uniqueGroup('consume-trimmed'), fromBeginning: true })
    await waitCommitted(admin, state.groupId, topic, [11, 12])
    assert.deepEqual(offsetsOf(state, 2), [[7, 8, 9, 10], [10, 11]], 'first offset == low watermark, nothing below')
    const values = [0, 1].map((p) => state.messages.filter((m) => m.partition === p).map((m) => m.value))
    assert.deepEqual(values, [['old1-2', 'old1-3', 'old1-4', 'new-0'], ['new-0', 'new-1']])
    await state.consumer.disconnect()
  })

  test('a committed offset beyond the high watermark is reset: earliest with fromBeginning, else latest', async () => {
    const topic = uniqueTopic('beyond-end')
    const admin = await ctx.admin()
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] })
    const producer = await ctx.producer()
    for (let p = 0; p < 2; p++) await produceBatch(producer, topic, p, 5, `p${p}`)
    const earliestGroup = uniqueGroup('beyond-end-earliest')
    const latestGroup = uniqueGroup('beyond-end-latest')
    // Partition 0 far beyond the end (1000 > 5), partition 1 in range (3).
    const positions = [
      { partition: 0, offset: '1000' },
      { partition: 1, offset: '3' },
    ]
    // (kafkajs's setOffsets runs a consumer of the group for a few seconds: both at once.)
    await Promise.all(
      [earliestGroup, latestGroup].map((groupId) => admin.setOffsets({ groupId, topic, partitions: positions }))
    )
    for (const groupId of [earliestGroup, latestGroup]) {
      assert.deepEqual(await committed(admin, groupId, topic), [1000, 3])
    }

    // fromBeginning true: partition 0 restarts at the log start; partition 1 is untouched.
    const earliest = await startConsumer(ctx, { topic, groupId: earliestGroup, fromBeginning: true })
    await waitCommitted(admin, earliest.groupId, topic, [5, 5])
    assert.deepEqual(offsetsOf(earliest, 2), [[0, 1, 2, 3, 4], [3, 4]])
    await earliest.consumer.disconnect()

    // fromBeginning false: partition 0 jumps to the end; only records written later arrive.
    const latest = await startConsumer(ctx, { topic, groupId: latestGroup, fromBeginning: false })
    await waitResetToLatest(admin, latest, topic, 0)
    await waitFor('partition 1 from its committed offset', () => latest.messages.length >= 2)
    for (let p = 0; p < 2; p++) assert.equal(await produceBatch(producer, topic, p, 2, `later-p${p}`), 5)
    await waitCommitted(admin, latest.groupId, topic, [7, 7])
    assert.deepEqual(offsetsOf(latest, 2), [[5, 6], [3, 4, 5, 6]])
    await latest.consumer.disconnect()
  })

  test('a committed offset below the low watermark after DeleteRecords is reset, not fatal', async (t) => {
    if (await skipUnlessAdvertised(t, ctx.broker, 'DeleteRecords')) return
    const topic = uniqueTopic('below-start')
    const admin = await ctx.admin()
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
    const producer = await ctx.producer()
    await produceBatch(producer, topic, 0, 5, 'a')
    await produceBatch(producer, topic, 0, 5, 'b')

    // Two groups read everything and commit 10.
    const groups = [uniqueGroup('below-start-earliest'), uniqueGroup('below-start-latest')]
    const first = await Promise.all(groups.map((groupId) => startConsumer(ctx, { topic, groupId, fromBeginning: true })))
    for (const state of first) {
      await waitCommitted(admin, state.groupId, topic, [10])
      assert.deepEqual(offsetsOf(state, 1), [range(0, 10)])
      await state.consumer.disconnect()
    }

    // Five more records (10-14), then the log start moves to 12, past both commits.
    assert.equal(await produceBatch(producer, topic, 0, 5, 'c'), 10)
    await admin.fetchTopicMetadata({ topics: [topic] })
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '12' }] })
    assert.deepEqual([await lowWatermarks(admin, topic), await highWatermarks(admin, topic)], [[12], [15]])
    for (const groupId of groups) assert.deepEqual(await committed(admin, groupId, topic), [10])

    // fromBeginning true: the earliest, now 12.
    const earliest = await startConsumer(ctx, { topic, groupId: groups[0], fromBeginning: true })
    await waitCommitted(admin, earliest.groupId, topic, [15])
    assert.deepEqual(offsetsOf(earliest, 1), [[12, 13, 14]])
    assert.deepEqual(earliest.messages.map((m) => m.value), ['c-2', 'c-3', 'c-4'])
    await earliest.consumer.disconnect()

    // fromBeginning false: the latest, 15; only what is written afterwards.
    const latest = await startConsumer(ctx, { topic, groupId: groups[1], fromBeginning: false })
    await waitResetToLatest(admin, latest, topic, 0)
    assert.equal(await produceBatch(producer, topic, 0, 2, 'd'), 15)
    await waitCommitted(admin, latest.groupId, topic, [17])
    assert.deepEqual(offsetsOf(latest, 1), [[15, 16]])
    assert.deepEqual(latest.messages.map((m) => m.value), ['d-0', 'd-1'])
    await latest.consumer.disconnect()
  })

  const CODECS = [
    ['gzip', CompressionTypes.GZIP],
    ['snappy', CompressionTypes.Snappy],
    ['lz4', CompressionTypes.LZ4],
    ['zstd', CompressionTypes.ZSTD],
  ]

  /** `count` records from n = `from`: compressible values, keys, headers, explicit timestamps. */
  const codecMessages = (tag, from, count) =>
    range(from, from + count).map((n) => ({
      key: `${tag}-k${n}`,
      value: `${tag} record ${n} `.repeat(20),
      timestamp: String(BASE_TS + n),
      headers: { n: String(n), codec: tag, multi: ['x', `y${n}`] },
    }))

  /** What the consumer must have seen of `messages`, written from offset 0 of partition 0. */
  const asConsumed = (messages) =>
    messages.map((m, offset) => ({
      partition: 0,
      offset,
      key: m.key,
      value: m.value,
      timestamp: m.timestamp,
      headers: m.headers,
    }))

  for (const [name, type] of CODECS) {
    test(`${name}-compressed batches are read back by a kafkajs consumer`, async (t) => {
      if (codecMissing[name]) return t.skip(codecMissing[name])
      const topic = uniqueTopic(`consume-${name}`)
      const admin = await ctx.admin()
      await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
      const producer = await ctx.producer()
      const written = []
      for (let b = 0; b < 3; b++) {
        const messages = codecMessages(name, b * 30, 30)
        const [md] = await producer.send({ topic, acks: -1, compression: type, messages })
        assert.equal(Number(md.baseOffset), b * 30)
        written.push(...messages)
      }
      const state = await startConsumer(ctx, { topic, groupId: uniqueGroup(`consume-${name}`), fromBeginning: true, batch: true })
      await waitCommitted(admin, state.groupId, topic, [90])
      assert.deepEqual(state.messages, asConsumed(written))
      await state.consumer.disconnect()
    })
  }

  test('one partition with batches of every codec, and uncompressed ones, reads back in order', async () => {
    const available = CODECS.filter(([name]) => !codecMissing[name])
    const topic = uniqueTopic('consume-mixed-codecs')
    const admin = await ctx.admin()
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
    const producer = await ctx.producer()
    const written = []
    for (const [name, type] of [['none', CompressionTypes.None], ...available, ['none', CompressionTypes.None]]) {
      const messages = codecMessages(name, written.length, 7)
      const [md] = await producer.send({ topic, acks: -1, compression: type, messages })
      assert.equal(Number(md.baseOffset), written.length)
      written.push(...messages)
    }
    const state = await startConsumer(ctx, { topic, groupId: uniqueGroup('consume-mixed'), fromBeginning: true })
    await waitCommitted(admin, state.groupId, topic, [written.length])
    assert.deepEqual(state.messages, asConsumed(written))
    await state.consumer.disconnect()
  })
})
