'use strict'
// Shared pieces of the kafkajs end-to-end tests: a broker per `describe` block (stopped
// cleanly and checked afterwards, its log attached to every failing test), kafkajs clients
// with quiet logs, the optional compression codecs, kcat as the second, independent
// client that reads back what kafkajs wrote, and what consumer-group tests need (a broker
// environment with short group timings, consumers with matching timeouts, polling).

const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const net = require('node:net')
const { before, after, afterEach } = require('node:test')
const { Kafka, logLevel, CompressionTypes, CompressionCodecs, Partitioners } = require('kafkajs')

const { startBroker, sleep } = require('./broker')

/**
 * Registers hooks in the enclosing `describe`: a broker started before its tests, stopped
 * (SIGTERM, exit code 0 required) after them, and its log tail printed for each failed test.
 * Returns a holder whose `.broker` is set once started.
 */
function useBroker(options = {}) {
  const ctx = { broker: null, clients: [], failed: false }
  before(async () => {
    ctx.broker = await startBroker(options)
  })
  afterEach((t) => {
    if (!t.passed && ctx.broker) {
      ctx.failed = true
      t.diagnostic(`sluice log ${ctx.broker.logPath} (kept), last lines:`)
      for (const line of ctx.broker.logTail().split('\n')) t.diagnostic(`  ${line}`)
    }
  })
  after(async () => {
    for (const c of ctx.clients.splice(0)) await c.disconnect().catch(() => {})
    if (!ctx.broker) return
    let stopError = null
    try {
      await ctx.broker.stop() // a crash or an unclean exit fails the suite, with the log
    } catch (e) {
      stopError = e
    }
    await ctx.broker.destroy({ keep: ctx.failed || !!stopError || !!process.env.SLUICE_KEEP_TEST_DATA })
    if (stopError) throw stopError
  })
  /** A kafkajs client for this broker; its producers/admins are disconnected afterwards. */
  ctx.kafka = (config = {}) => newKafka(ctx.broker, config)
  ctx.admin = async (options) => {
    const admin = ctx.kafka().admin(options)
    await admin.connect()
    ctx.clients.push(admin)
    return admin
  }
  ctx.producer = async (options = {}, kafkaConfig = {}) => {
    const producer = ctx.kafka(kafkaConfig).producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
      ...options,
    })
    await producer.connect()
    ctx.clients.push(producer)
    return producer
  }
  /**
   * A connected kafkajs consumer (`options` must include groupId) with timeouts that fit a
   * broker started with GROUP_TEST_ENV; disconnected afterwards if the test does not.
   */
  ctx.consumer = async (options, kafkaConfig = {}) => {
    const consumer = ctx.kafka(kafkaConfig).consumer({ ...CONSUMER_TIMEOUTS, ...options })
    await consumer.connect()
    ctx.clients.push(consumer)
    return consumer
  }
  return ctx
}

/**
 * Broker environment for consumer-group tests: a short initial rebalance delay, and a
 * minimum session timeout low enough for CONSUMER_TIMEOUTS.
 */
const GROUP_TEST_ENV = {
  SLUICE_GROUP_INITIAL_REBALANCE_DELAY_MS: '300',
  SLUICE_GROUP_MIN_SESSION_TIMEOUT_MS: '1000',
}

/** kafkajs consumer timeouts for tests: a dead member is noticed in seconds, not minutes. */
const CONSUMER_TIMEOUTS = {
  sessionTimeout: 6000,
  heartbeatInterval: 500,
  rebalanceTimeout: 10000,
  maxWaitTimeInMs: 500,
}

let clientSeq = 0
function newKafka(broker, config = {}) {
  return new Kafka({
    clientId: `sluice-node-test-${++clientSeq}`,
    brokers: [broker.bootstrap],
    logLevel: process.env.KAFKAJS_LOG_LEVEL ? logLevel[process.env.KAFKAJS_LOG_LEVEL] : logLevel.NOTHING,
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    ...config,
  })
}

/**
 * Registers the compression codecs whose packages load. Returns, per codec name, `null` when
 * it is available or the reason it is not (for `t.skip`).
 */
function loadCodecs() {
  const missing = { gzip: null }
  const register = (name, type, load) => {
    try {
      CompressionCodecs[type] = load()
      missing[name] = null
    } catch (e) {
      missing[name] = `the ${name} codec for kafkajs is not installed or does not load here: ${e.message}`
    }
  }
  register('snappy', CompressionTypes.Snappy, () => require('kafkajs-snappy'))
  register('lz4', CompressionTypes.LZ4, () => {
    const LZ4Codec = require('@2l/kafkajs-lz4') // lz4-napi: prebuilt native binary from npm
    return new LZ4Codec().codec
  })
  register('zstd', CompressionTypes.ZSTD, () => {
    const zstd = require('@mongodb-js/zstd') // prebuilt native binary from npm
    return () => ({
      async compress(encoder) {
        return zstd.compress(encoder.buffer, 3)
      },
      async decompress(buffer) {
        return zstd.decompress(buffer)
      },
    })
  })
  return missing
}

/** Runs kcat with `args`; resolves to stdout, rejects with stderr on failure. */
function runKcat(args, { timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(
      process.env.KCAT || 'kcat',
      args,
      { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`kcat ${args.join(' ')} failed: ${err.message}\n${stderr}`))
        else resolve(stdout)
      }
    )
  })
}

/**
 * Reads a partition from the beginning to its end with kcat (librdkafka) and returns the
 * records as kcat's JSON envelopes: { topic, partition, offset, tstype, ts, headers, key,
 * payload, ... } with `headers` turned into an array of [name, value] pairs.
 */
async function kcatRead(broker, topic, partition, extra = []) {
  const out = await runKcat([
    '-b', broker.bootstrap, '-C', '-t', topic, '-p', String(partition),
    '-o', 'beginning', '-e', '-q', '-J', ...extra,
  ])
  return out
    .split('\n')
    .filter((l) => l.trim())
    .map((line) => {
      const r = JSON.parse(line)
      const flat = r.headers || []
      r.headers = []
      for (let i = 0; i < flat.length; i += 2) r.headers.push([flat[i], flat[i + 1]])
      return r
    })
}

/** Kafka API keys of the APIs the tests probe for. */
const API = {
  DeleteTopics: 20,
  DeleteRecords: 21,
  OffsetForLeaderEpoch: 23,
  DescribeConfigs: 32,
  AlterConfigs: 33,
  DescribeLogDirs: 35,
  CreatePartitions: 37,
  IncrementalAlterConfigs: 44,
  DescribeCluster: 60,
}

/**
 * The broker's ApiVersions answer as a Map(apiKey -> [min, max]), asked with a hand-made
 * ApiVersions v0 request (independent of kafkajs's negotiation).
 */
function apiVersions(broker) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: broker.port })
    const request = Buffer.alloc(14)
    request.writeInt32BE(10, 0) // size
    request.writeInt16BE(18, 4) // ApiVersions
    request.writeInt16BE(0, 6) // v0
    request.writeInt32BE(1, 8) // correlation id
    request.writeInt16BE(-1, 12) // null client id
    let buf = Buffer.alloc(0)
    socket.setTimeout(5000, () => socket.destroy(new Error('ApiVersions timed out')))
    socket.on('error', reject)
    socket.on('connect', () => socket.write(request))
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk])
      if (buf.length < 4 || buf.length < 4 + buf.readInt32BE(0)) return
      socket.end()
      const errorCode = buf.readInt16BE(8)
      if (errorCode !== 0) return reject(new Error(`ApiVersions error ${errorCode}`))
      const versions = new Map()
      const count = buf.readInt32BE(10)
      for (let i = 0, o = 14; i < count; i++, o += 6) {
        versions.set(buf.readInt16BE(o), [buf.readInt16BE(o + 2), buf.readInt16BE(o + 4)])
      }
      resolve(versions)
    })
  })
}

/**
 * Skips test `t` (returning true) when the broker does not advertise `apiName` yet: the
 * feature is not implemented, which is not a failure of what is implemented.
 */
async function skipUnlessAdvertised(t, broker, ...apiNames) {
  const versions = await apiVersions(broker)
  const missing = apiNames.filter((name) => !versions.has(API[name]))
  if (missing.length === 0) return false
  t.skip(`sluice does not advertise ${missing.join(', ')} in ApiVersions yet (not implemented)`)
  return true
}

/**
 * Polls `check` until it returns a truthy value (returned) or `timeoutMs` passes; the error
 * then names `what` and, if given, the `state()` at the end. Errors thrown by `check` count
 * as "not yet" (the last one is reported).
 */
async function waitFor(what, check, { timeoutMs = 20000, intervalMs = 100, state } = {}) {
  const deadline = Date.now() + timeoutMs
  let lastError = null
  for (;;) {
    try {
      const result = await check()
      if (result) return result
      lastError = null
    } catch (e) {
      lastError = e
    }
    if (Date.now() >= deadline) {
      const details = [lastError && `last error: ${lastError.message}`, state && `state: ${JSON.stringify(await state())}`]
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${details.filter(Boolean).map((d) => `; ${d}`).join('')}`)
    }
    await sleep(intervalMs)
  }
}

/**
 * Every Kafka error type (e.g. 'NON_EMPTY_GROUP') found in a kafkajs error: retries wrap the
 * original, batch operations list one error per topic, partition or group.
 */
function errorTypes(e) {
  const types = new Set()
  const visit = (x, depth = 0) => {
    if (!x || depth > 4) return
    if (x.type) types.add(x.type)
    for (const inner of x.errors || []) visit(inner, depth + 1)
    for (const p of x.partitions || []) visit(p.error, depth + 1)
    for (const g of x.groups || []) visit(g.error, depth + 1)
    visit(x.originalError, depth + 1)
    visit(x.cause, depth + 1)
  }
  visit(e)
  return [...types]
}

/** The group's committed offsets of `topic` by partition (-1: none), via OffsetFetch. */
async function committed(admin, groupId, topic) {
  const [result] = await admin.fetchOffsets({ groupId, topics: [topic] })
  assert.equal(result.topic, topic)
  return [...result.partitions].sort((a, b) => a.partition - b.partition).map((p) => Number(p.offset))
}

/** The high watermark of each partition of `topic`. */
async function highWatermarks(admin, topic) {
  const offsets = await admin.fetchTopicOffsets(topic)
  return [...offsets].sort((a, b) => a.partition - b.partition).map((p) => Number(p.high))
}

/** Waits until the group's committed offsets of `topic` are `expected` (by partition). */
async function waitCommitted(admin, groupId, topic, expected) {
  let last = null
  await waitFor(
    `committed offsets ${JSON.stringify(expected)}`,
    async () => {
      last = await committed(admin, groupId, topic)
      return JSON.stringify(last) === JSON.stringify(expected)
    },
    { state: () => last }
  )
}

/** The low watermark (log start offset) of each partition of `topic`. */
async function lowWatermarks(admin, topic) {
  const offsets = await admin.fetchTopicOffsets(topic)
  return [...offsets].sort((a, b) => a.partition - b.partition).map((p) => Number(p.low))
}

/** A topic name unique within this process. */
let topicSeq = 0
const uniqueTopic = (prefix) => `${prefix}-${process.pid}-${++topicSeq}`
/** Group ids are names unique within this process, like topics. */
const uniqueGroup = uniqueTopic

/** A Buffer (or null, or an array of them, as kafkajs gives repeated headers) as strings. */
const text = (v) => (v == null ? v : Array.isArray(v) ? v.map(text) : v.toString())
/** kafkajs message headers (Buffers, arrays of them for repeated names) as strings. */
const headerStrings = (headers) =>
  Object.fromEntries(Object.entries(headers || {}).map(([name, value]) => [name, text(value)]))
/** What a kafkajs consumer saw of a record, in a form easy to compare. */
const consumedRecord = (partition, message) => ({
  partition,
  offset: Number(message.offset),
  key: text(message.key),
  value: text(message.value),
  timestamp: message.timestamp,
  headers: headerStrings(message.headers),
})

module.exports = {
  API,
  apiVersions,
  skipUnlessAdvertised,
  useBroker,
  newKafka,
  loadCodecs,
  runKcat,
  kcatRead,
  uniqueTopic,
  uniqueGroup,
  text,
  headerStrings,
  consumedRecord,
  committed,
  waitCommitted,
  highWatermarks,
  lowWatermarks,
  waitFor,
  errorTypes,
  GROUP_TEST_ENV,
  CONSUMER_TIMEOUTS,
  CompressionTypes,
}
