'use strict'
// Kafka transactions (KIP-98, KIP-447) as kafkajs users see them: a transactional producer
// commits and aborts transactions over several partitions, and a read_committed consumer
// (kafkajs's default) reads only what was committed, in order, keys, headers and timestamps
// intact, while a read_uncommitted one reads everything; consume-transform-produce with
// transaction.sendOffsets commits a group's offsets only with the transaction; an open
// transaction holds back the last stable offset; a second producer with the same
// transactionalId fences the first and aborts its open transaction; the broker aborts a
// transaction that outlives its transaction timeout; and after a SIGKILL the transactions'
// outcomes, and an open transaction, are recovered from the log. kcat (librdkafka, with
// newer protocol versions than kafkajs) reads the partitions back as a second client.
//
// Offsets are asserted exactly: a transaction's commit or abort marker is one control record
// per partition the transaction wrote to, so it takes one offset there (as in Kafka).
//
// kafkajs 2.2.4 quirks this file works with:
// - It speaks old versions of the transaction APIs (InitProducerId, AddPartitionsToTxn,
//   AddOffsetsToTxn, TxnOffsetCommit, EndTxn v0-v1; Produce up to v7). Kafka answers a
//   fenced producer on those versions with INVALID_PRODUCER_EPOCH (47), never
//   PRODUCER_FENCED (90, which kafkajs does not know: it would surface as
//   KAFKAJS_UNKNOWN_ERROR_CODE). The fencing tests expect INVALID_PRODUCER_EPOCH.
// - An idempotent producer (idempotent: true) gets a plain producer id on connect(); the
//   transactional one is a separate state that sends InitProducerId with the transactionalId
//   on the first producer.transaction(). So "a second producer fences the first" happens when
//   the second calls transaction(), not connect().
// - Once the broker fences it, a kafkajs producer cannot start another transaction (its state
//   machine stays in COMMITTING/TRANSACTING): users create a new producer, as done here.
// - An idempotent producer retries forever by default (retries = MAX_SAFE_INTEGER); the
//   producers here get a finite retry so that a broker bug fails a test instead of hanging it
//   (kafkajs only logs a warning for this).
// - A kafkajs consumer with the default auto-commit settings does not commit its position
//   past a fetch made only of control or aborted records (e.g. a partition's trailing
//   commit/abort marker): its committed offset stays before the marker. The readers here
//   set autoCommitThreshold: 1 (see startReader).
// - admin.fetchTopicOffsets asks ListOffsets with isolation level READ_COMMITTED, so its
//   `high` is the last stable offset, not the high watermark.
// - TxnOffsetCommit v0/v1 carries no member id or generation; OffsetFetch (v1-v4 in kafkajs)
//   does not ask for stable offsets, so pending transactional offsets read as the last
//   committed ones.

const assert = require('node:assert/strict')
const { describe, test } = require('node:test')

const {
  apiVersions,
  useBroker,
  kcatRead,
  uniqueTopic,
  uniqueGroup,
  text,
  consumedRecord,
  committed,
  waitCommitted,
  highWatermarks,
  waitFor,
  errorTypes,
  GROUP_TEST_ENV,
} = require('./support')

/** Explicit CreateTime timestamps: an hour ago (inside retention). */
const BASE_TS = Date.now() - 3600 * 1000

const TEST_TIMEOUT = { timeout: 180000 }

/** Broker environment: fast groups, and timed-out transactions looked for every 500 ms. */
const TXN_ENV = {
  ...GROUP_TEST_ENV,
  SLUICE_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
  SLUICE_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS: '500',
}

/** kafkajs's default client retry (the test clients otherwise use a shorter one). */
const KAFKAJS_DEFAULT_RETRY = { retries: 5, initialRetryTime: 300, maxRetryTime: 30000 }

/** Kafka API keys of the transaction APIs (InitProducerId, 22, is there for idempotence). */
const TXN_APIS = { AddPartitionsToTxn: 24, AddOffsetsToTxn: 25, EndTxn: 26, TxnOffsetCommit: 28 }

/** Skips `t` (returning true) when the broker does not advertise the transaction APIs yet. */
async function skipUnlessTransactions(t, broker) {
  const versions = await apiVersions(broker)
  const missing = Object.keys(TXN_APIS).filter((name) => !versions.has(TXN_APIS[name]))
  if (missing.length === 0) return false
  t.skip(`sluice does not advertise ${missing.join(', ')} in ApiVersions yet (not implemented)`)
  return true
}

const range = (n) => Array.from({ length: n }, (_, i) => i)

/**
 * A connected transactional kafkajs producer, configured as the kafkajs documentation says
 * (idempotent, one request in flight); kafkajs's default client retry, so that InitProducerId
 * retries CONCURRENT_TRANSACTIONS while the broker aborts a previous producer's transaction.
 */
function transactionalProducer(ctx, transactionalId, options = {}) {
  return ctx.producer(
    {
      transactionalId,
      idempotent: true,
      maxInFlightRequests: 1,
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
      ...options,
    },
    { retry: KAFKAJS_DEFAULT_RETRY }
  )
}

/**
 * Reads `topic` with a read_committed and a read_uncommitted consumer until each has what the
 * ledger says it must see, and checks they saw exactly that, in order. Returns both readers
 * (still connected) for further checks.
 */
async function readBothWays (ctx, topic, ledger, partitions, committedLabel, uncommittedLabel) {
  const committedView = ledger.view({ readUncommitted: false })
  const uncommittedView = ledger.view({ readUncommitted: true })
  const readCommitted = await startReader(ctx, topic)
  const readUncommitted = await startReader(ctx, topic, { readUncommitted: true })
  await waitForCount(readCommitted, committedView.flat().length, committedLabel)
  await waitForCount(readUncommitted, uncommittedView.flat().length, uncommittedLabel)
  assert.deepEqual(byPartition(readCommitted.messages, partitions), committedView, committedLabel)
  assert.deepEqual(byPartition(readUncommitted.messages, partitions), uncommittedView, uncommittedLabel)
  return { readCommitted, readUncommitted }
}

/**
 * A new topic of `partitions` partitions, with the admin client that created it, an empty
 * ledger of what the test writes and the record counter the messages are numbered from.
 */
async function freshTopic (ctx, prefix, partitions) {
  const topic = uniqueTopic(prefix)
  const admin = await ctx.admin()
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions }] })
  return { topic, admin, ledger: newLedger(partitions), seq: { n: 0 } }
}

/**
 * What the partitions of a topic must hold: every record sent, at the offset it must have,
 * with the transaction it belongs to (null outside transactions). A transaction's end takes
 * one offset (its marker) on each partition it wrote to.
 */
function newLedger(partitions) {
  const ledger = {
    next: range(partitions).map(() => 0),
    records: [],
    begin(name) {
      return { name, partitions: new Set(), status: 'open' }
    },
    /** Records `messages` sent with `send` (resolving to kafkajs RecordMetadata) in `txn`. */
    async send(send, topic, messages, txn = null) {
      const metadata = await send({ topic, acks: -1, messages })
      const firsts = new Map()
      for (const m of messages) {
        if (!firsts.has(m.partition)) firsts.set(m.partition, ledger.next[m.partition])
        ledger.records.push({ message: m, partition: m.partition, offset: ledger.next[m.partition]++, txn })
        if (txn) txn.partitions.add(m.partition)
      }
      const acknowledged = new Map(metadata.map((md) => [md.partition, Number(md.baseOffset)]))
      assert.deepEqual(acknowledged, firsts, `base offsets acknowledged for ${topic}`)
    },
    end(txn, status) {
      txn.status = status
      for (const p of txn.partitions) ledger.next[p] += 1
    },
    /** The records a reader sees, per partition in offset order (as consumedRecord, without partition). */
    view({ readUncommitted }) {
      const visible = (r) => !r.txn || r.txn.status === 'committed' || (readUncommitted && r.txn)
      return range(partitions).map((p) =>
        ledger.records.filter((r) => r.partition === p && visible(r)).map(expectedRecord)
      )
    },
  }
  return ledger
}

/** What a kafkajs consumer must see of a ledger record. */
function expectedRecord({ message, offset }) {
  const headers = Object.fromEntries(
    Object.entries(message.headers || {}).map(([k, v]) => [k, Array.isArray(v) ? v.map(text) : text(v)])
  )
  return { offset, key: text(message.key), value: text(message.value), timestamp: String(message.timestamp), headers }
}

/** Messages with keys, headers (one repeated) and explicit timestamps. */
function messagesFor(tag, partition, count, seq) {
  return range(count).map((i) => {
    const n = seq.n++
    return {
      partition,
      key: `${tag}-p${partition}-k${i}`,
      value: `${tag}-p${partition}-v${i}`,
      timestamp: String(BASE_TS + n),
      headers: { txn: tag, seq: String(n), multi: ['a', `b${n}`] },
    }
  })
}

/**
 * A kafkajs consumer in a new group reading `topic` from the beginning with eachMessage (and
 * auto-commit). `readUncommitted` is kafkajs's switch for the isolation level (default false:
 * read_committed). Its state: `messages` (as consumedRecord), `fetches` (completed fetches).
 *
 * autoCommitThreshold 1: kafkajs moves its position past a fetch that holds only control
 * records or aborted records (a trailing commit/abort marker), but commits that position only
 * through autoCommitInterval/autoCommitThreshold, both off by default; with the defaults the
 * group's committed offset stays before a trailing marker. A threshold of 1 commits it.
 */
async function startReader(ctx, topic, { readUncommitted = false, name } = {}) {
  const groupId = uniqueGroup(name || (readUncommitted ? 'read-uncommitted' : 'read-committed'))
  const consumer = await ctx.consumer({ groupId, readUncommitted })
  const state = { consumer, groupId, messages: [], fetches: 0 }
  consumer.on(consumer.events.FETCH, () => {
    state.fetches += 1
  })
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommitThreshold: 1,
    eachMessage: async ({ partition, message }) => {
      state.messages.push(consumedRecord(partition, message))
    },
  })
  return state
}

/** A reader's records per partition, in the order consumed (without the partition field). */
const byPartition = (messages, partitions) =>
  range(partitions).map((p) => messages.filter((m) => m.partition === p).map(({ partition, ...rest }) => rest))

/** Waits until `reader` has consumed `count` records (then compares; extra ones show there). */
async function waitForCount(reader, count, what) {
  await waitFor(`${what}: ${count} records`, () => reader.messages.length >= count, {
    timeoutMs: 30000,
    state: () => reader.messages.map((m) => `p${m.partition}@${m.offset} ${m.value}`),
  })
}

/**
 * Waits until `reader` has completed a whole fetch that started after this call, and processed
 * its records (kafkajs fetches, hands the batches to eachMessage, then fetches again).
 */
async function waitForFreshFetch(reader) {
  const seen = reader.fetches
  await waitFor('a whole fetch after this point', () => reader.fetches >= seen + 3, { timeoutMs: 30000 })
}

/**
 * The last stable offset of each partition: admin.fetchTopicOffsets asks ListOffsets with
 * READ_COMMITTED (a kafkajs default), so its `high` is the LSO.
 */
const lastStableOffsets = highWatermarks

async function waitForLastStableOffsets(admin, topic, expected, what) {
  let last = null
  await waitFor(
    `${what}: last stable offsets ${JSON.stringify(expected)}`,
    async () => {
      last = await lastStableOffsets(admin, topic)
      return JSON.stringify(last) === JSON.stringify(expected)
    },
    { timeoutMs: 30000, state: () => last }
  )
}

/** The KafkaJSProtocolError in a kafkajs error (retriers wrap it as `cause`), or null. */
function protocolError(e) {
  for (let x = e, depth = 0; x && depth < 6; x = x.cause || x.originalError, depth++) {
    if (x.name === 'KafkaJSProtocolError') return x
  }
  return null
}

/** Asserts `promise` rejects because the producer was fenced (see the quirks above). */
async function assertFenced(promise, what) {
  let error = null
  try {
    await promise
  } catch (e) {
    error = e
  }
  assert.ok(error, `${what}: expected a rejection (producer fenced), but it succeeded`)
  const pe = protocolError(error)
  assert.ok(
    pe,
    `${what}: expected a KafkaJSProtocolError, got ${error.name}: ${error.message} [${errorTypes(error)}]`
  )
  assert.equal(
    pe.type,
    'INVALID_PRODUCER_EPOCH',
    `${what}: expected INVALID_PRODUCER_EPOCH (47, what Kafka answers on kafkajs's request versions), ` +
      `got ${pe.type} (code ${pe.code}): ${pe.message}`
  )
}

/** A kcat record (kcatRead) as a ledger record looks. */
const kcatView = (r) => ({
  offset: r.offset,
  key: r.key,
  value: r.payload,
  timestamp: String(r.ts),
  headers: r.headers,
})

/** A ledger record as kcat shows it (repeated headers are repeated pairs). */
const kcatExpected = (r) => ({
  offset: r.offset,
  key: r.key,
  value: r.value,
  timestamp: r.timestamp,
  headers: Object.entries(r.headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, x]) : [[k, v]])),
})

/** Reads `topic`'s partitions with kcat at an isolation level. */
async function kcatPartitions(broker, topic, partitions, isolation) {
  const out = []
  for (let p = 0; p < partitions; p++) {
    out.push((await kcatRead(broker, topic, p, ['-X', `isolation.level=${isolation}`])).map(kcatView))
  }
  return out
}

describe('kafkajs transactions', () => {
  const ctx = useBroker({ env: TXN_ENV })

  test('committed and aborted transactions over three partitions: read_committed sees only the committed', TEST_TIMEOUT, async (t) => {
    if (await skipUnlessTransactions(t, ctx.broker)) return
    const PARTITIONS = 3
    const { topic, admin, ledger, seq } = await freshTopic(ctx, 'txn-commit-abort', PARTITIONS)
    const producer = await transactionalProducer(ctx, `txn-commit-abort-${topic}`)

    // t1, committed: two sends, the second adding partition 2 to the open transaction.
    const t1 = ledger.begin('t1')
    let txn = await producer.transaction()
    await ledger.send(txn.send, topic, [...messagesFor('t1', 0, 2, seq), ...messagesFor('t1', 1, 1, seq)], t1)
    await ledger.send(txn.send, topic, [...messagesFor('t1', 1, 1, seq), ...messagesFor('t1', 2, 2, seq)], t1)
    await txn.commit()
    ledger.end(t1, 'committed')

    // t2, aborted: partitions 0 and 1.
    const t2 = ledger.begin('t2')
    txn = await producer.transaction()
    await ledger.send(txn.send, topic, [...messagesFor('t2', 0, 2, seq), ...messagesFor('t2', 1, 2, seq)], t2)
    await txn.abort()
    ledger.end(t2, 'aborted')

    // t3, committed: partitions 0 and 2 (partition 1 ends with t2's abort marker).
    const t3 = ledger.begin('t3')
    txn = await producer.transaction()
    await ledger.send(txn.send, topic, [...messagesFor('t3', 0, 2, seq), ...messagesFor('t3', 2, 1, seq)], t3)
    await txn.commit()
    ledger.end(t3, 'committed')
    assert.equal(txn.isActive(), false)

    // Every marker written: the last stable offset is the end of each partition.
    assert.deepEqual(ledger.next, [9, 6, 5])
    await waitForLastStableOffsets(admin, topic, ledger.next, 'after the last commit')

    const { readCommitted, readUncommitted } = await readBothWays(ctx, topic, ledger, PARTITIONS, 'read_committed: t1 and t3 only', 'read_uncommitted: t1, t2, t3')
    // Both groups consumed past the markers, to the end of every partition.
    await waitCommitted(admin, readCommitted.groupId, topic, ledger.next)
    await waitCommitted(admin, readUncommitted.groupId, topic, ledger.next)
    await readCommitted.consumer.disconnect()
    await readUncommitted.consumer.disconnect()

    // librdkafka (Fetch v11+, its own aborted-transaction filtering) reads the same.
    assert.deepEqual(
      await kcatPartitions(ctx.broker, topic, PARTITIONS, 'read_committed'),
      ledger.view({ readUncommitted: false }).map((records) => records.map(kcatExpected)),
      'kcat read_committed'
    )
    assert.deepEqual(
      await kcatPartitions(ctx.broker, topic, PARTITIONS, 'read_uncommitted'),
      ledger.view({ readUncommitted: true }).map((records) => records.map(kcatExpected)),
      'kcat read_uncommitted'
    )
  })

  test('consume-transform-produce: sendOffsets commits the group offsets only with the transaction', TEST_TIMEOUT, async (t) => {
    if (await skipUnlessTransactions(t, ctx.broker)) return
    const PARTITIONS = 2
    const COUNT = 5
    const input = uniqueTopic('ctp-in')
    const output = uniqueTopic('ctp-out')
    const groupId = uniqueGroup('ctp')
    const admin = await ctx.admin()
    await admin.createTopics({
      topics: [
        { topic: input, numPartitions: PARTITIONS },
        { topic: output, numPartitions: PARTITIONS },
      ],
    })
    const plain = await ctx.producer()
    const inputs = range(PARTITIONS).map((p) =>
      range(COUNT).map((i) => ({
        partition: p,
        key: `in-p${p}-k${i}`,
        value: `in-p${p}-v${i}`,
        timestamp: String(BASE_TS + 100 * p + i),
        headers: { origin: 'input', multi: ['x', `y${i}`] },
      }))
    )
    await plain.send({ topic: input, acks: -1, messages: inputs.flat() })

    // The first attempt at these inputs is aborted (after its output and offsets were sent),
    // and the consumer seeks back to process them again.
    const ABORT_FIRST = new Set(['0@1', '0@3', '1@2'])
    const producer = await transactionalProducer(ctx, `ctp-${groupId}`)
    const ledger = newLedger(PARTITIONS)
    const attempts = [] // per transaction: what the group's committed offsets were along the way
    const tries = new Map()
    const state = { failure: null, processing: null }
    const consumer = await ctx.consumer({ groupId })
    await consumer.subscribe({ topics: [input], fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        if (state.failure) return
        const offset = Number(message.offset)
        const id = `${partition}@${offset}`
        state.processing = id
        try {
          const attempt = (tries.get(id) || 0) + 1
          tries.set(id, attempt)
          const abort = attempt === 1 && ABORT_FIRST.has(id)
          const record = { partition, offset, attempt, outcome: abort ? 'aborted' : 'committed' }

          const txn = await producer.transaction()
          const lt = ledger.begin(id)
          const transformed = {
            partition, // input partition p goes to output partition p: order is kept
            key: message.key,
            value: `${text(message.value)}->out`,
            timestamp: message.timestamp,
            headers: { ...message.headers, 'source-offset': String(offset), attempt: String(attempt) },
          }
          await ledger.send(txn.send, output, [transformed], lt)
          await txn.sendOffsets({
            consumerGroupId: groupId,
            topics: [{ topic, partitions: [{ partition, offset: String(offset + 1) }] }],
          })
          // Pending in the open transaction: not committed yet.
          record.whileOpen = (await committed(admin, groupId, topic))[partition]
          if (abort) {
            await txn.abort()
            ledger.end(lt, 'aborted')
            // Once the abort marker is in the output partition, the abort is complete.
            await waitForLastStableOffsets(admin, output, ledger.next, `abort of ${id}`)
            record.after = (await committed(admin, groupId, topic))[partition]
            attempts.push(record)
            consumer.seek({ topic, partition, offset: message.offset }) // process it again
            return
          }
          await txn.commit()
          ledger.end(lt, 'committed')
          let last = null
          await waitFor(
            `${id}: committed offset ${offset + 1} after the commit`,
            async () => {
              last = (await committed(admin, groupId, topic))[partition]
              return last === offset + 1
            },
            { timeoutMs: 4000, state: () => last } // well within the session timeout
          )
          record.after = last
          attempts.push(record)
        } catch (e) {
          state.failure = e
        }
      },
    })

    const expectedAfter = range(PARTITIONS).map(() => COUNT)
    let lastCommitted = null
    await waitFor(
      `every input processed, committed offsets ${expectedAfter}`,
      async () => {
        if (state.failure) return true
        lastCommitted = await committed(admin, groupId, input)
        return JSON.stringify(lastCommitted) === JSON.stringify(expectedAfter)
      },
      { timeoutMs: 60000, state: () => ({ processing: state.processing, committed: lastCommitted, attempts }) }
    )
    await consumer.disconnect()
    if (state.failure) {
      assert.fail(
        `consume-transform-produce failed at ${state.processing}: ${state.failure.message} ` +
          `[${errorTypes(state.failure)}]; attempts so far: ${JSON.stringify(attempts)}`
      )
    }

    // Committed offsets moved only with commits: an aborted attempt left the offset where
    // it was (-1: nothing committed yet), a pending one was not visible.
    const before = (offset) => (offset === 0 ? -1 : offset)
    const expectedAttempts = range(PARTITIONS).flatMap((p) =>
      range(COUNT).flatMap((i) => {
        const ok = { partition: p, offset: i, outcome: 'committed', whileOpen: before(i), after: i + 1 }
        return ABORT_FIRST.has(`${p}@${i}`)
          ? [{ partition: p, offset: i, attempt: 1, outcome: 'aborted', whileOpen: before(i), after: before(i) }, { ...ok, attempt: 2 }]
          : [{ ...ok, attempt: 1 }]
      })
    )
    const sortKey = (a) => a.partition * 1000 + a.offset * 10 + a.attempt
    assert.deepEqual(
      [...attempts].sort((a, b) => sortKey(a) - sortKey(b)),
      expectedAttempts,
      'committed offsets of the group while open, and after each commit or abort'
    )
    assert.deepEqual(await committed(admin, groupId, input), expectedAfter)
    // Per partition, the attempts were made in input order (the aborted one retried first).
    for (let p = 0; p < PARTITIONS; p++) {
      const order = attempts.filter((a) => a.partition === p).map((a) => `${a.offset}#${a.attempt}`)
      const wanted = expectedAttempts.filter((a) => a.partition === p).map((a) => `${a.offset}#${a.attempt}`)
      assert.deepEqual(order, wanted, `processing order on input partition ${p}`)
    }

    // The output read with read_committed: every input exactly once, in order, transformed,
    // keys, headers and timestamps carried over; read_uncommitted also shows the aborted tries.
    await waitForLastStableOffsets(admin, output, ledger.next, 'output after the last commit')
    const committedView = ledger.view({ readUncommitted: false })
    for (let p = 0; p < PARTITIONS; p++) {
      assert.deepEqual(
        committedView[p].map((r) => [r.key, r.value, r.timestamp, r.headers.multi, r.headers['source-offset']]),
        inputs[p].map((m, i) => [m.key, `${m.value}->out`, m.timestamp, m.headers.multi, String(i)]),
        `the ledger of output partition ${p} holds each input once (test self-check)`
      )
    }
    const { readCommitted, readUncommitted } = await readBothWays(ctx, output, ledger, PARTITIONS, 'output, read_committed', 'output, read_uncommitted')
    await readCommitted.consumer.disconnect()
    await readUncommitted.consumer.disconnect()
  })

  test('an open transaction holds back the last stable offset and read_committed consumers until it commits', TEST_TIMEOUT, async (t) => {
    if (await skipUnlessTransactions(t, ctx.broker)) return
    const PARTITIONS = 2
    const { topic, admin, ledger, seq } = await freshTopic(ctx, 'txn-open', PARTITIONS)
    const plain = await ctx.producer()
    const producer = await transactionalProducer(ctx, `txn-open-${topic}`)

    // Before: one plain record per partition, read by both readers.
    await ledger.send(plain.send, topic, [...messagesFor('before', 0, 1, seq), ...messagesFor('before', 1, 1, seq)])
    const readCommitted = await startReader(ctx, topic)
    const readUncommitted = await startReader(ctx, topic, { readUncommitted: true })
    await waitForCount(readCommitted, 2, 'read_committed, before the transaction')
    await waitForCount(readUncommitted, 2, 'read_uncommitted, before the transaction')

    // The transaction's records, then plain records after them on both partitions.
    const open = ledger.begin('open')
    const txn = await producer.transaction()
    await ledger.send(txn.send, topic, [...messagesFor('open', 0, 2, seq), ...messagesFor('open', 1, 1, seq)], open)
    await ledger.send(plain.send, topic, [...messagesFor('after', 0, 1, seq), ...messagesFor('after', 1, 1, seq)])

    // The LSO is the first offset of the open transaction on each partition.
    assert.deepEqual(await lastStableOffsets(admin, topic), [1, 1], 'last stable offsets while open')
    // read_uncommitted reads all of it (so it is there to be fetched)...
    await waitForCount(readUncommitted, 7, 'read_uncommitted, transaction open')
    assert.deepEqual(byPartition(readUncommitted.messages, PARTITIONS), ledger.view({ readUncommitted: true }))
    // ...read_committed nothing past the LSO, not even the plain records after it.
    await waitForFreshFetch(readCommitted)
    assert.deepEqual(
      byPartition(readCommitted.messages, PARTITIONS),
      ledger.view({ readUncommitted: false }).map((records) => records.filter((r) => r.offset < 1)),
      'read_committed while the transaction is open: only what precedes it'
    )
    assert.deepEqual(await lastStableOffsets(admin, topic), [1, 1], 'last stable offsets still, before the commit')

    await txn.commit()
    ledger.end(open, 'committed')
    assert.deepEqual(ledger.next, [5, 4])
    await waitForLastStableOffsets(admin, topic, ledger.next, 'after the commit')
    await waitForCount(readCommitted, 7, 'read_committed, after the commit')
    assert.deepEqual(byPartition(readCommitted.messages, PARTITIONS), ledger.view({ readUncommitted: false }))
    await waitCommitted(admin, readCommitted.groupId, topic, ledger.next)
    await readCommitted.consumer.disconnect()
    await readUncommitted.consumer.disconnect()
  })

  test('zombie fencing: a second producer with the same transactionalId fences the first and aborts its transaction', TEST_TIMEOUT, async (t) => {
    if (await skipUnlessTransactions(t, ctx.broker)) return
    const PARTITIONS = 3
    const { topic, admin, ledger, seq } = await freshTopic(ctx, 'txn-fence', PARTITIONS)
    const transactionalId = `txn-fence-${topic}`

    // The zombie: a transaction open on partitions 0 and 1.
    const zombie = await transactionalProducer(ctx, transactionalId)
    const zombieTxnState = ledger.begin('zombie')
    const zombieTxn = await zombie.transaction()
    await ledger.send(zombieTxn.send, topic, [...messagesFor('zombie', 0, 1, seq), ...messagesFor('zombie', 1, 1, seq)], zombieTxnState)
    assert.deepEqual(await lastStableOffsets(admin, topic), [0, 0, 0], 'the zombie transaction is open')

    // Its successor: InitProducerId with the same transactionalId (on transaction()) bumps the
    // epoch and aborts the open transaction before it returns.
    const successor = await transactionalProducer(ctx, transactionalId)
    const successorTxn = await successor.transaction()
    ledger.end(zombieTxnState, 'aborted')
    assert.deepEqual(
      await lastStableOffsets(admin, topic),
      [2, 2, 0],
      'the zombie transaction was aborted (markers written) when the successor initialized'
    )

    // The zombie can do nothing more in its transaction: Produce to a partition of it,
    // AddPartitionsToTxn for a new one, EndTxn (commit) are all refused.
    await assertFenced(zombieTxn.send({ topic, acks: -1, messages: messagesFor('late', 0, 1, seq) }), 'zombie Produce')
    await assertFenced(zombieTxn.send({ topic, acks: -1, messages: messagesFor('late', 2, 1, seq) }), 'zombie AddPartitionsToTxn')
    await assertFenced(zombieTxn.commit(), 'zombie EndTxn(commit)')
    assert.deepEqual(await lastStableOffsets(admin, topic), [2, 2, 0], 'nothing written by the fenced zombie')

    // The successor's transaction commits.
    const successorTxnState = ledger.begin('successor')
    await ledger.send(
      successorTxn.send,
      topic,
      [...messagesFor('successor', 0, 1, seq), ...messagesFor('successor', 1, 1, seq), ...messagesFor('successor', 2, 1, seq)],
      successorTxnState
    )
    await successorTxn.commit()
    ledger.end(successorTxnState, 'committed')
    assert.deepEqual(ledger.next, [4, 4, 2])
    await waitForLastStableOffsets(admin, topic, ledger.next, 'after the successor committed')

    const committedView = ledger.view({ readUncommitted: false })
    const uncommittedView = ledger.view({ readUncommitted: true })
    const readCommitted = await startReader(ctx, topic)
    const readUncommitted = await startReader(ctx, topic, { readUncommitted: true })
    await waitForCount(readCommitted, 3, 'read_committed')
    await waitForCount(readUncommitted, 5, 'read_uncommitted')
    assert.deepEqual(byPartition(readCommitted.messages, PARTITIONS), committedView, 'read_committed: the successor only')
    assert.deepEqual(byPartition(readUncommitted.messages, PARTITIONS), uncommittedView, 'read_uncommitted: both')
    await readCommitted.consumer.disconnect()
    await readUncommitted.consumer.disconnect()
    assert.deepEqual(
      await kcatPartitions(ctx.broker, topic, PARTITIONS, 'read_committed'),
      committedView.map((records) => records.map(kcatExpected)),
      'kcat read_committed'
    )

    // A successor of the successor fences it in turn, with nothing open to abort.
    const third = await transactionalProducer(ctx, transactionalId)
    const thirdTxn = await third.transaction()
    const previousTxn = await successor.transaction()
    await assertFenced(
      previousTxn.send({ topic, acks: -1, messages: messagesFor('late', 0, 1, seq) }),
      'fenced successor AddPartitionsToTxn'
    )
    const thirdState = ledger.begin('third')
    await ledger.send(thirdTxn.send, topic, messagesFor('third', 2, 1, seq), thirdState)
    await thirdTxn.commit()
    ledger.end(thirdState, 'committed')
    await waitForLastStableOffsets(admin, topic, ledger.next, 'after the third producer committed')
  })

  test('a transaction older than its transaction timeout is aborted by the broker', TEST_TIMEOUT, async (t) => {
    if (await skipUnlessTransactions(t, ctx.broker)) return
    const { topic, admin, ledger, seq } = await freshTopic(ctx, 'txn-timeout', 1)
    const transactionalId = `txn-timeout-${topic}`

    // transactionTimeout (transaction.timeout.ms) 1 s; the broker looks every 500 ms.
    const producer = await transactionalProducer(ctx, transactionalId, { transactionTimeout: 1000 })
    const state = ledger.begin('timed-out')
    const txn = await producer.transaction()
    await ledger.send(txn.send, topic, messagesFor('timed-out', 0, 2, seq), state)
    ledger.end(state, 'aborted')
    // Nobody ends it: the broker aborts it (and the LSO moves past its marker).
    await waitForLastStableOffsets(admin, topic, [3], 'the broker to abort the timed-out transaction')
    // Aborting bumped the epoch: the producer is fenced.
    await assertFenced(txn.commit(), 'EndTxn(commit) of the timed-out transaction')

    // A new producer with the same transactionalId carries on.
    const next = await transactionalProducer(ctx, transactionalId)
    const nextState = ledger.begin('next')
    const nextTxn = await next.transaction()
    await ledger.send(nextTxn.send, topic, messagesFor('next', 0, 1, seq), nextState)
    await nextTxn.commit()
    ledger.end(nextState, 'committed')
    await waitForLastStableOffsets(admin, topic, [5], 'after the next transaction committed')

    const readCommitted = await startReader(ctx, topic)
    const readUncommitted = await startReader(ctx, topic, { readUncommitted: true })
    await waitForCount(readCommitted, 1, 'read_committed')
    await waitForCount(readUncommitted, 3, 'read_uncommitted')
    assert.deepEqual(byPartition(readCommitted.messages, 1), ledger.view({ readUncommitted: false }))
    assert.deepEqual(byPartition(readUncommitted.messages, 1), ledger.view({ readUncommitted: true }))
    await readCommitted.consumer.disconnect()
    await readUncommitted.consumer.disconnect()
  })
})

describe('kafkajs transactions across a SIGKILL', () => {
  const ctx = useBroker({ env: TXN_ENV })

  test('after kill -9 and restart: outcomes kept, an open transaction and pending offsets are aborted by the next producer', TEST_TIMEOUT, async (t) => {
    if (await skipUnlessTransactions(t, ctx.broker)) return
    const PARTITIONS = 2
    const topic = uniqueTopic('txn-crash')
    const source = uniqueTopic('txn-crash-src')
    const groupId = uniqueGroup('txn-crash')
    const admin = await ctx.admin()
    await admin.createTopics({
      topics: [
        { topic, numPartitions: PARTITIONS },
        { topic: source, numPartitions: 1 },
      ],
    })
    const transactionalId = `txn-crash-${topic}`
    const ledger = newLedger(PARTITIONS)
    const seq = { n: 0 }

    const producer = await transactionalProducer(ctx, transactionalId)
    const c1 = ledger.begin('c1')
    let txn = await producer.transaction()
    await ledger.send(txn.send, topic, [...messagesFor('c1', 0, 2, seq), ...messagesFor('c1', 1, 1, seq)], c1)
    await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: source, partitions: [{ partition: 0, offset: '3' }] }] })
    await txn.commit()
    ledger.end(c1, 'committed')
    const a1 = ledger.begin('a1')
    txn = await producer.transaction()
    await ledger.send(txn.send, topic, messagesFor('a1', 1, 2, seq), a1)
    await txn.abort()
    ledger.end(a1, 'aborted')
    await waitForLastStableOffsets(admin, topic, ledger.next, 'c1 and a1 ended')
    await waitCommitted(admin, groupId, source, [3])
    // Left open at the crash: records on partition 0 and offsets of the group.
    const open = ledger.begin('open-at-crash')
    txn = await producer.transaction()
    await ledger.send(txn.send, topic, messagesFor('open', 0, 1, seq), open)
    await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: source, partitions: [{ partition: 0, offset: '7' }] }] })

    await ctx.broker.kill9()
    await ctx.broker.restart()
    await producer.disconnect().catch(() => {})

    // Recovered: the ended transactions' outcomes; the open one still holds back the LSO of
    // partition 0 (its record is at 3, after c1's two records and marker).
    assert.deepEqual(ledger.next, [4, 5])
    assert.deepEqual(await lastStableOffsets(admin, topic), [3, 5], 'LSO after restart: the open transaction')
    assert.deepEqual(await committed(admin, groupId, source), [3], 'only the committed transaction\'s offset')

    // The next producer with the transactionalId aborts it (recovered coordinator state).
    const next = await transactionalProducer(ctx, transactionalId)
    const c2 = ledger.begin('c2')
    const nextTxn = await next.transaction()
    ledger.end(open, 'aborted')
    assert.deepEqual(await lastStableOffsets(admin, topic), ledger.next, 'the open transaction was aborted on InitProducerId')
    await ledger.send(nextTxn.send, topic, [...messagesFor('c2', 0, 1, seq), ...messagesFor('c2', 1, 1, seq)], c2)
    await nextTxn.commit()
    ledger.end(c2, 'committed')
    await waitForLastStableOffsets(admin, topic, ledger.next, 'after c2')
    assert.deepEqual(await committed(admin, groupId, source), [3], 'the aborted transaction\'s offset 7 was dropped')

    const { readCommitted, readUncommitted } = await readBothWays(ctx, topic, ledger, PARTITIONS, 'read_committed after restart', 'read_uncommitted after restart')
    await readCommitted.consumer.disconnect()
    await readUncommitted.consumer.disconnect()
  })
})
