'use strict'
// Crash safety as a kafkajs user sees it: the broker is killed with SIGKILL while producers
// with acks=-1 are sending; after a restart on the same data directory every acknowledged
// record is at the offset the broker acknowledged, with its value (read back by kcat), and
// topics, partitions and the cluster id are as before.

const assert = require('node:assert/strict')
const { describe, test } = require('node:test')

const { ConfigResourceTypes, ConfigSource } = require('kafkajs')

const { API, apiVersions, useBroker, kcatRead, uniqueTopic } = require('./support')

const PARTITIONS = 2
const WRITERS = 4
const BATCH = 5
const KILL_AFTER_ACKS = 120 // acknowledged sends before the SIGKILL

describe('kill -9 mid-produce', () => {
  const ctx = useBroker()

  test('every acknowledged record survives a SIGKILL and a restart', async (t) => {
    const topic = uniqueTopic('durable')
    const admin = await ctx.admin()
    await admin.createTopics({
      topics: [{ topic, numPartitions: PARTITIONS, configEntries: [{ name: 'retention.ms', value: '-1' }] }],
    })
    const { clusterId } = await admin.describeCluster()
    await admin.disconnect()

    // No retries: a send in flight at the kill fails instead of being re-sent elsewhere.
    const producer = await ctx.producer(
      { retry: { retries: 0 } },
      { retry: { retries: 0 }, connectionTimeout: 1000, requestTimeout: 5000 }
    )
    const acked = [] // { partition, offset, value }
    const failures = []
    let killing = null
    const writer = async (w) => {
      for (let i = 0; ; i++) {
        const partition = (w + i) % PARTITIONS
        const messages = Array.from({ length: BATCH }, (_, j) => ({
          key: `w${w}`,
          value: `w${w}-s${i}-m${j}`,
          partition,
        }))
        let metadata
        try {
          metadata = await producer.send({ topic, acks: -1, messages })
        } catch (e) {
          failures.push(e)
          return
        }
        const [md] = metadata
        assert.equal(md.partition, partition)
        assert.equal(md.errorCode, 0)
        messages.forEach((m, j) =>
          acked.push({ partition, offset: Number(md.baseOffset) + j, value: m.value })
        )
        if (acked.length >= KILL_AFTER_ACKS * BATCH && !killing) {
          killing = ctx.broker.kill9() // while the other writers' sends are in flight
        }
        if (killing) await new Promise((resolve) => setImmediate(resolve))
      }
    }
    await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)))
    assert.ok(killing, 'the broker was killed')
    await killing
    assert.equal(failures.length, WRITERS, 'each writer stopped on a failed send')
    t.diagnostic(`${acked.length} records acknowledged before the kill`)
    await producer.disconnect().catch(() => {})

    await ctx.broker.restart()

    const stored = []
    for (let p = 0; p < PARTITIONS; p++) {
      const records = await kcatRead(ctx.broker, topic, p)
      // The log is contiguous from 0: no holes where a torn batch was cut.
      assert.deepEqual(records.map((r) => r.offset), records.map((_, i) => i), `partition ${p} offsets`)
      stored.push(new Map(records.map((r) => [r.offset, r.payload])))
    }
    t.diagnostic(`${stored.reduce((n, m) => n + m.size, 0)} records in the log after the restart`)
    const lost = acked.filter(({ partition, offset, value }) => stored[partition].get(offset) !== value)
    assert.deepEqual(lost.slice(0, 10), [], `${lost.length} of ${acked.length} acknowledged records lost or changed`)

    // Metadata survived too, and the partitions keep taking records after the last offset.
    const admin2 = await ctx.admin()
    const { topics } = await admin2.fetchTopicMetadata({ topics: [topic] })
    assert.equal(topics[0].partitions.length, PARTITIONS)
    assert.equal((await admin2.describeCluster()).clusterId, clusterId)
    const offsets = await admin2.fetchTopicOffsets(topic)
    for (const { partition, low, high } of offsets) {
      assert.equal(low, '0')
      assert.equal(high, String(stored[partition].size))
    }
    const after = await ctx.producer()
    const [md] = await after.send({ topic, acks: -1, messages: [{ partition: 0, value: 'after restart' }] })
    assert.equal(md.baseOffset, String(stored[0].size))
    const tail = await kcatRead(ctx.broker, topic, 0, ['-o', md.baseOffset])
    assert.deepEqual(tail.map((r) => r.payload), ['after restart'])
  })

  test('topics, topic configs and dynamic broker configs survive a clean restart', async (t) => {
    const topic = uniqueTopic('configured')
    const admin = await ctx.admin()
    await admin.createTopics({
      topics: [
        {
          topic,
          numPartitions: 3,
          configEntries: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }],
        },
      ],
    })
    const versions = await apiVersions(ctx.broker)
    const configApis = versions.has(API.DescribeConfigs) && versions.has(API.AlterConfigs)
    if (configApis) {
      await admin.alterConfigs({
        resources: [{ type: ConfigResourceTypes.BROKER, name: '0', configEntries: [{ name: 'log.retention.ms', value: '3600000' }] }],
      })
    } else {
      t.diagnostic('AlterConfigs/DescribeConfigs not advertised: dynamic broker configs not checked')
    }
    await admin.disconnect()
    await ctx.broker.stop()
    await ctx.broker.restart()

    const admin2 = await ctx.admin()
    const { topics } = await admin2.fetchTopicMetadata({ topics: [topic] })
    assert.equal(topics[0].partitions.length, 3)
    if (configApis) {
      const { resources } = await admin2.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['message.timestamp.type', 'retention.ms'] }],
      })
      assert.deepEqual(
        resources[0].configEntries.map((c) => [c.configName, c.configValue, c.configSource]).sort(),
        [
          ['message.timestamp.type', 'LogAppendTime', ConfigSource.TOPIC_CONFIG],
          ['retention.ms', '3600000', ConfigSource.DYNAMIC_BROKER_CONFIG],
        ]
      )
    }
    // The config still applies: records get the broker's append time.
    const producer = await ctx.producer()
    const [md] = await producer.send({ topic, acks: -1, messages: [{ partition: 0, value: 'x', timestamp: '1000' }] })
    assert.notEqual(md.logAppendTime, '-1')
    const records = await kcatRead(ctx.broker, topic, 0)
    assert.deepEqual(records.map((r) => [r.tstype, r.ts]), [['logappend', Number(md.logAppendTime)]])
  })
})
