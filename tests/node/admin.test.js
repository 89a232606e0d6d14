'use strict'
// kafkajs admin client against sluice: topics (create with configs, validate-only, errors,
// metadata, list, delete), offsets (low/high, by timestamp), configs (describe, alter),
// partitions, record deletion, cluster description. Data written by kafkajs is read back
// with kcat where the outcome is about records.
//
// Tests of APIs sluice does not advertise in ApiVersions yet are skipped with that reason.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { describe, test } = require('node:test')
const { ConfigResourceTypes, ConfigSource } = require('kafkajs')

const { useBroker, kcatRead, uniqueTopic, skipUnlessAdvertised, errorTypes } = require('./support')


/** An assert.rejects validator: the error carries Kafka error type `type`. */
const kafkaError = (type) => (e) => {
  assert.ok(errorTypes(e).includes(type), `expected ${type}, got ${e.name}: ${e.message} [${errorTypes(e)}]`)
  return true
}

/** The config entries of one describeConfigs resource as { name: entry }. */
function byName(resource) {
  return Object.fromEntries(resource.configEntries.map((c) => [c.configName, c]))
}

async function topicConfigs(admin, topic, configNames) {
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames }],
  })
  assert.equal(resources.length, 1)
  assert.equal(resources[0].errorCode, 0)
  assert.equal(resources[0].resourceName, topic)
  return byName(resources[0])
}

const SEVEN_DAYS_MS = '604800000'

describe('kafkajs admin', () => {
  const ctx = useBroker()

  test('createTopics with partitions and configs; fetchTopicMetadata and listTopics show it', async () => {
    const admin = await ctx.admin()
    const topic = uniqueTopic('with-configs')
    const created = await admin.createTopics({
      topics: [
        {
          topic,
          numPartitions: 4,
          replicationFactor: 1,
          configEntries: [
            { name: 'retention.ms', value: '3600000' },
            { name: 'cleanup.policy', value: 'compact' },
          ],
        },
      ],
    })
    assert.equal(created, true)
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(topics.length, 1)
    assert.equal(topics[0].name, topic)
    assert.deepEqual(
      topics[0].partitions
        .map((p) => [p.partitionId, p.partitionErrorCode, p.leader, p.replicas, p.isr])
        .sort((a, b) => a[0] - b[0]),
      [0, 1, 2, 3].map((p) => [p, 0, 0, [0], [0]])
    )
    assert.ok((await admin.listTopics()).includes(topic))
    // The partition directories exist on disk, as the README describes.
    for (let p = 0; p < 4; p++) {
      assert.ok(fs.existsSync(path.join(ctx.broker.dataDir, `${topic}-${p}`)), `${topic}-${p} on disk`)
    }
  })

  test('createTopics with validateOnly checks but creates nothing', async () => {
    const admin = await ctx.admin()
    const topic = uniqueTopic('validate-only')
    const ok = await admin.createTopics({
      validateOnly: true,
      waitForLeaders: false, // waiting would ask Metadata for a topic that must not exist
      topics: [{ topic, numPartitions: 2, configEntries: [{ name: 'retention.ms', value: '1000' }] }],
    })
    assert.equal(ok, true)
    assert.ok(!(await admin.listTopics()).includes(topic), 'validateOnly created the topic')
    await assert.rejects(
      admin.createTopics({
        validateOnly: true,
        waitForLeaders: false,
        topics: [{ topic, configEntries: [{ name: 'retention.ms', value: 'soon' }] }],
      }),
      kafkaError('INVALID_CONFIG')
    )
    assert.ok(!(await admin.listTopics()).includes(topic))
  })

  test('createTopics errors: invalid name, existing topic, bad partitions, replication, config', async () => {
    const admin = await ctx.admin({ retry: { retries: 0 } })
    await assert.rejects(
      admin.createTopics({ topics: [{ topic: 'no spaces allowed!' }] }),
      kafkaError('INVALID_TOPIC_EXCEPTION')
    )
    await assert.rejects(
      admin.createTopics({ topics: [{ topic: 'x'.repeat(250) }] }),
      kafkaError('INVALID_TOPIC_EXCEPTION')
    )

    const topic = uniqueTopic('exists')
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] }), true)
    // kafkajs turns "every topic already exists" (TOPIC_ALREADY_EXISTS) into `false`.
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 5 }] }), false)
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(topics[0].partitions.length, 2, 'the existing topic is unchanged')

    // A request mixing an existing topic and an invalid one reports both, per topic.
    const bad = uniqueTopic('bad') + '/slash'
    await assert.rejects(admin.createTopics({ topics: [{ topic }, { topic: bad }] }), (e) => {
      assert.deepEqual(errorTypes(e).sort(), ['INVALID_TOPIC_EXCEPTION', 'TOPIC_ALREADY_EXISTS'])
      return true
    })

    await assert.rejects(
      admin.createTopics({ topics: [{ topic: uniqueTopic('zero'), numPartitions: 0 }] }),
      kafkaError('INVALID_PARTITIONS')
    )
    await assert.rejects(
      admin.createTopics({ topics: [{ topic: uniqueTopic('rf'), replicationFactor: 100 }] }),
      kafkaError('INVALID_REPLICATION_FACTOR')
    )
    await assert.rejects(
      admin.createTopics({
        topics: [{ topic: uniqueTopic('cfg'), configEntries: [{ name: 'cleanup.policy', value: 'shred' }] }],
      }),
      kafkaError('INVALID_CONFIG')
    )
  })

  test('fetchTopicOffsets gives low and high watermarks per partition', async () => {
    const admin = await ctx.admin()
    const topic = uniqueTopic('offsets')
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] })
    const empty = await admin.fetchTopicOffsets(topic)
    assert.deepEqual(
      empty.map(({ partition, low, high, offset }) => ({ partition, low, high, offset })).sort((a, b) => a.partition - b.partition),
      [0, 1, 2].map((partition) => ({ partition, low: '0', high: '0', offset: '0' }))
    )
    const producer = await ctx.producer()
    // Partition 0: 3 batches (5 + 1 + 4 records); partition 1: 1 record; partition 2: none.
    for (const count of [5, 1, 4]) {
      await producer.send({
        topic,
        messages: Array.from({ length: count }, (_, i) => ({ partition: 0, value: `v${i}` })),
      })
    }
    await producer.send({ topic, messages: [{ partition: 1, value: 'one' }] })
    const offsets = await admin.fetchTopicOffsets(topic)
    assert.deepEqual(
      offsets.map(({ partition, low, high }) => ({ partition, low, high })).sort((a, b) => a.partition - b.partition),
      [
        { partition: 0, low: '0', high: '10' },
        { partition: 1, low: '0', high: '1' },
        { partition: 2, low: '0', high: '0' },
      ]
    )
  })

  test('fetchTopicOffsetsByTimestamp finds the first offset at or after a time', async () => {
    const admin = await ctx.admin()
    const topic = uniqueTopic('by-time')
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
    const producer = await ctx.producer()
    const t0 = Date.now() - 600000
    // Offsets 0-4 in one batch at t0+0,10,20,30,40; offsets 5-9 one batch each at t0+100..140.
    await producer.send({
      topic,
      messages: Array.from({ length: 5 }, (_, i) => ({ value: `a${i}`, timestamp: String(t0 + 10 * i) })),
    })
    for (let i = 0; i < 5; i++) {
      await producer.send({ topic, messages: [{ value: `b${i}`, timestamp: String(t0 + 100 + 10 * i) }] })
    }
    const at = async (ts) => {
      const result = await admin.fetchTopicOffsetsByTimestamp(topic, ts)
      assert.equal(result.length, 1)
      assert.equal(result[0].partition, 0)
      return result[0].offset
    }
    assert.equal(await at(t0 - 1000), '0', 'before everything: the first offset')
    assert.equal(await at(t0), '0')
    assert.equal(await at(t0 + 1), '1', 'inside the first batch: the exact record')
    assert.equal(await at(t0 + 30), '3')
    assert.equal(await at(t0 + 41), '5', 'between batches: the next batch')
    assert.equal(await at(t0 + 120), '7')
    assert.equal(await at(t0 + 140), '9')
    // Past the last timestamp the broker answers -1 and kafkajs substitutes the high watermark.
    assert.equal(await at(t0 + 10000), '10')
  })

  test('describeConfigs lists every topic config with defaults and explicit values', async (t) => {
    if (await skipUnlessAdvertised(t, ctx.broker, 'DescribeConfigs')) return
    const admin = await ctx.admin()
    const topic = uniqueTopic('describe')
    await admin.createTopics({
      topics: [{ topic, configEntries: [{ name: 'max.message.bytes', value: '20000' }] }],
    })
    const all = await topicConfigs(admin, topic)
    for (const name of ['retention.ms', 'retention.bytes', 'cleanup.policy', 'segment.bytes', 'segment.ms',
      'max.message.bytes', 'message.timestamp.type', 'min.compaction.lag.ms', 'delete.retention.ms']) {
      assert.ok(all[name], `${name} is listed (got ${Object.keys(all)})`)
    }
    assert.equal(all['retention.ms'].configValue, SEVEN_DAYS_MS)
    assert.equal(all['retention.ms'].isDefault, true)
    assert.equal(all['retention.ms'].configSource, ConfigSource.DEFAULT_CONFIG)
    assert.equal(all['cleanup.policy'].configValue, 'delete')
    assert.equal(all['message.timestamp.type'].configValue, 'CreateTime')
    assert.equal(all['max.message.bytes'].configValue, '20000')
    assert.equal(all['max.message.bytes'].isDefault, false)
    assert.equal(all['max.message.bytes'].configSource, ConfigSource.TOPIC_CONFIG)
    for (const entry of Object.values(all)) {
      assert.equal(entry.isSensitive, false, entry.configName)
      assert.equal(typeof entry.configValue, 'string', entry.configName)
    }

    // Only the names asked for.
    const some = await topicConfigs(admin, topic, ['retention.ms', 'cleanup.policy'])
    assert.deepEqual(Object.keys(some).sort(), ['cleanup.policy', 'retention.ms'])

    // With synonyms: the topic's own value first, then the broker default it overrides.
    const { resources } = await admin.describeConfigs({
      includeSynonyms: true,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['max.message.bytes', 'retention.ms'] }],
    })
    const synonyms = Object.fromEntries(
      resources[0].configEntries.map((c) => [c.configName, c.configSynonyms.map((s) => [s.configName, s.configValue, s.configSource])])
    )
    assert.deepEqual(synonyms, {
      'max.message.bytes': [
        ['max.message.bytes', '20000', ConfigSource.TOPIC_CONFIG],
        ['message.max.bytes', '1048588', ConfigSource.DEFAULT_CONFIG],
      ],
      'retention.ms': [['log.retention.ms', SEVEN_DAYS_MS, ConfigSource.DEFAULT_CONFIG]],
    })

    // An unknown topic is an error of that resource.
    await assert.rejects(
      admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: uniqueTopic('never-created') }],
      }),
      kafkaError('UNKNOWN_TOPIC_OR_PARTITION')
    )
  })

  test('describeConfigs of the broker', async (t) => {
    if (await skipUnlessAdvertised(t, ctx.broker, 'DescribeConfigs')) return
    const admin = await ctx.admin()
    const { brokers } = await admin.describeCluster()
    const nodeId = String(brokers[0].nodeId)
    const { resources } = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.BROKER, name: nodeId }],
    })
    assert.equal(resources.length, 1)
    assert.equal(resources[0].errorCode, 0)
    assert.equal(resources[0].resourceName, nodeId)
    const configs = byName(resources[0])
    assert.ok(Object.keys(configs).length > 0, 'the broker has configs')
    for (const entry of Object.values(configs)) {
      assert.equal(typeof entry.configName, 'string')
      assert.ok(entry.configValue === null || typeof entry.configValue === 'string', entry.configName)
    }
    // Kafka's broker-level names, values and flags for what sluice has: tools read these.
    const known = {
      'broker.id': [nodeId, true],
      'auto.create.topics.enable': ['true', true],
      'num.partitions': ['1', true],
      'default.replication.factor': ['1', true],
      'log.retention.ms': [SEVEN_DAYS_MS, false],
      'log.retention.hours': ['168', true],
      'log.cleanup.policy': ['delete', false],
      'log.segment.bytes': ['1073741824', false],
      'message.max.bytes': ['1048588', false],
    }
    for (const [name, [value, readOnly]] of Object.entries(known)) {
      assert.ok(configs[name], `${name} is listed`)
      assert.deepEqual(
        [configs[name].configValue, configs[name].readOnly, configs[name].configSource],
        [value, readOnly, ConfigSource.DEFAULT_CONFIG],
        name
      )
    }
  })

  test('alterConfigs replaces a topic\'s configs; validateOnly and bad values change nothing', async (t) => {
    if (await skipUnlessAdvertised(t, ctx.broker, 'AlterConfigs', 'DescribeConfigs')) return
    const admin = await ctx.admin({ retry: { retries: 0 } })
    const topic = uniqueTopic('alter')
    await admin.createTopics({ topics: [{ topic }] })
    const alter = (configEntries, validateOnly = false) =>
      admin.alterConfigs({ validateOnly, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries }] })

    const { resources } = await alter([
      { name: 'retention.ms', value: '86400000' },
      { name: 'max.message.bytes', value: '50000' },
    ])
    assert.deepEqual(
      resources.map((r) => [r.errorCode, r.resourceName]),
      [[0, topic]]
    )
    let configs = await topicConfigs(admin, topic)
    assert.equal(configs['retention.ms'].configValue, '86400000')
    assert.equal(configs['retention.ms'].configSource, ConfigSource.TOPIC_CONFIG)
    assert.equal(configs['max.message.bytes'].configValue, '50000')

    // validateOnly: accepted, not applied.
    await alter([{ name: 'retention.ms', value: '1000' }], true)
    configs = await topicConfigs(admin, topic)
    assert.equal(configs['retention.ms'].configValue, '86400000')

    // A bad value is refused and nothing changes.
    await assert.rejects(alter([{ name: 'retention.ms', value: 'forever' }]), kafkaError('INVALID_CONFIG'))
    configs = await topicConfigs(admin, topic)
    assert.equal(configs['retention.ms'].configValue, '86400000')

    // AlterConfigs (unlike IncrementalAlterConfigs) sets the whole set: what is left out
    // returns to its default.
    await alter([{ name: 'cleanup.policy', value: 'compact,delete' }])
    configs = await topicConfigs(admin, topic)
    assert.equal(configs['cleanup.policy'].configValue, 'compact,delete')
    assert.equal(configs['retention.ms'].configValue, SEVEN_DAYS_MS)
    assert.equal(configs['retention.ms'].isDefault, true)
    assert.equal(configs['max.message.bytes'].isDefault, true)

    // The new limit is enforced: max.message.bytes set to 10000 refuses a 20 kB record.
    await alter([{ name: 'max.message.bytes', value: '10000' }])
    const producer = await ctx.producer({ retry: { retries: 0 } })
    await assert.rejects(
      producer.send({ topic, messages: [{ value: 'x'.repeat(20000) }] }),
      kafkaError('MESSAGE_TOO_LARGE')
    )

    await assert.rejects(
      admin.alterConfigs({
        resources: [{ type: ConfigResourceTypes.TOPIC, name: uniqueTopic('nope'), configEntries: [{ name: 'retention.ms', value: '1' }] }],
      }),
      kafkaError('UNKNOWN_TOPIC_OR_PARTITION')
    )
  })

  test('alterConfigs on the broker changes the default of topics without their own value', async (t) => {
    if (await skipUnlessAdvertised(t, ctx.broker, 'AlterConfigs', 'DescribeConfigs')) return
    const admin = await ctx.admin({ retry: { retries: 0 } })
    const { brokers } = await admin.describeCluster()
    const nodeId = String(brokers[0].nodeId)
    const plain = uniqueTopic('inherits')
    const own = uniqueTopic('own-retention')
    await admin.createTopics({
      topics: [{ topic: plain }, { topic: own, configEntries: [{ name: 'retention.ms', value: '7200000' }] }],
    })
    const alterBroker = (configEntries) =>
      admin.alterConfigs({ resources: [{ type: ConfigResourceTypes.BROKER, name: nodeId, configEntries }] })
    try {
      await alterBroker([{ name: 'log.retention.ms', value: '43200000' }])
      const inherited = (await topicConfigs(admin, plain))['retention.ms']
      assert.equal(inherited.configValue, '43200000')
      assert.equal(inherited.configSource, ConfigSource.DYNAMIC_BROKER_CONFIG)
      assert.equal((await topicConfigs(admin, own))['retention.ms'].configValue, '7200000')
      const { resources } = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.BROKER, name: nodeId, configNames: ['log.retention.ms'] }],
      })
      assert.deepEqual(
        resources[0].configEntries.map((c) => [c.configName, c.configValue, c.configSource]),
        [['log.retention.ms', '43200000', ConfigSource.DYNAMIC_BROKER_CONFIG]]
      )
      // A setting fixed at start-up cannot be changed at run time (Kafka answers
      // INVALID_REQUEST, "Cannot update these configs dynamically"; INVALID_CONFIG is as clear).
      await assert.rejects(alterBroker([{ name: 'num.partitions', value: '5' }]), (e) => {
        const types = errorTypes(e)
        assert.ok(types.includes('INVALID_CONFIG') || types.includes('INVALID_REQUEST'), `${e.message} [${types}]`)
        return true
      })
    } finally {
      await alterBroker([]) // back to the static defaults
    }
    const back = (await topicConfigs(admin, plain))['retention.ms']
    assert.deepEqual([back.configValue, back.configSource], [SEVEN_DAYS_MS, ConfigSource.DEFAULT_CONFIG])
  })

  test('createPartitions grows a topic; the new partitions take records', async (t) => {
    if (await skipUnlessAdvertised(t, ctx.broker, 'CreatePartitions')) return
    const admin = await ctx.admin({ retry: { retries: 0 } })
    const topic = uniqueTopic('grow')
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })

    await admin.createPartitions({ validateOnly: true, topicPartitions: [{ topic, count: 5 }] })
    let { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(topics[0].partitions.length, 1, 'validateOnly added partitions')

    await admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] })
    ;({ topics } = await admin.fetchTopicMetadata({ topics: [topic] }))
    assert.deepEqual(topics[0].partitions.map((p) => p.partitionId).sort(), [0, 1, 2])

    const producer = await ctx.producer()
    const [md] = await producer.send({ topic, messages: [{ partition: 2, key: 'k', value: 'on new partition' }] })
    assert.equal(md.partition, 2)
    assert.equal(md.baseOffset, '0')
    const records = await kcatRead(ctx.broker, topic, 2)
    assert.deepEqual(records.map((r) => [r.offset, r.key, r.payload]), [[0, 'k', 'on new partition']])

    await assert.rejects(
      admin.createPartitions({ topicPartitions: [{ topic, count: 2 }] }),
      kafkaError('INVALID_PARTITIONS')
    )
    await assert.rejects(
      admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] }),
      kafkaError('INVALID_PARTITIONS')
    )
    await assert.rejects(
      admin.createPartitions({ topicPartitions: [{ topic: uniqueTopic('absent'), count: 3 }] }),
      kafkaError('UNKNOWN_TOPIC_OR_PARTITION')
    )
  })

  test('deleteTopicRecords moves the log start offset; kcat reads from there', async (t) => {
    if (await skipUnlessAdvertised(t, ctx.broker, 'DeleteRecords')) return
    const admin = await ctx.admin({ retry: { retries: 0 } })
    const topic = uniqueTopic('trim')
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] })
    const producer = await ctx.producer()
    for (let batch = 0; batch < 2; batch++) {
      await producer.send({
        topic,
        messages: Array.from({ length: 5 }, (_, i) => ({ partition: 0, key: `k${batch * 5 + i}`, value: 'v' })),
      })
    }
    await producer.send({ topic, messages: [{ partition: 1, value: 'a' }, { partition: 1, value: 'b' }] })

    // kafkajs looks up partition leaders in its metadata cache before loading the topic's
    // metadata ("Could not find the leader for the partition" otherwise): load it first.
    await admin.fetchTopicMetadata({ topics: [topic] })
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '7' }] })
    let offsets = await admin.fetchTopicOffsets(topic)
    const p0 = offsets.find((o) => o.partition === 0)
    assert.deepEqual([p0.low, p0.high], ['7', '10'])
    const records = await kcatRead(ctx.broker, topic, 0)
    assert.deepEqual(records.map((r) => [r.offset, r.key]), [[7, 'k7'], [8, 'k8'], [9, 'k9']])

    // -1 deletes everything up to the high watermark.
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 1, offset: '-1' }] })
    offsets = await admin.fetchTopicOffsets(topic)
    const p1 = offsets.find((o) => o.partition === 1)
    assert.deepEqual([p1.low, p1.high], ['2', '2'])
    assert.deepEqual(await kcatRead(ctx.broker, topic, 1), [])

    // Beyond the high watermark: OFFSET_OUT_OF_RANGE, nothing changes.
    await assert.rejects(
      admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '11' }] }),
      kafkaError('OFFSET_OUT_OF_RANGE')
    )
    offsets = await admin.fetchTopicOffsets(topic)
    assert.equal(offsets.find((o) => o.partition === 0).low, '7')

    // New records keep their offsets after the trimmed range.
    const [md] = await producer.send({ topic, messages: [{ partition: 0, key: 'k10', value: 'v' }] })
    assert.equal(md.baseOffset, '10')
  })

  test('deleteTopics removes a topic and its files; the name can be reused', async (t) => {
    if (await skipUnlessAdvertised(t, ctx.broker, 'DeleteTopics')) return
    const admin = await ctx.admin({ retry: { retries: 0 } })
    const topic = uniqueTopic('doomed')
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] })
    const producer = await ctx.producer()
    await producer.send({ topic, messages: [{ partition: 0, value: 'old-1' }, { partition: 0, value: 'old-2' }] })

    await admin.deleteTopics({ topics: [topic] })
    assert.ok(!(await admin.listTopics()).includes(topic))
    for (let p = 0; p < 2; p++) {
      assert.ok(!fs.existsSync(path.join(ctx.broker.dataDir, `${topic}-${p}`)), `${topic}-${p} still on disk`)
    }
    await assert.rejects(
      admin.deleteTopics({ topics: [topic] }),
      kafkaError('UNKNOWN_TOPIC_OR_PARTITION')
    )

    // Recreated, it starts empty at offset 0.
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] }), true)
    const fresh = await ctx.producer()
    const [md] = await fresh.send({ topic, messages: [{ partition: 0, value: 'new' }] })
    assert.equal(md.baseOffset, '0')
    const records = await kcatRead(ctx.broker, topic, 0)
    assert.deepEqual(records.map((r) => [r.offset, r.payload]), [[0, 'new']])
  })

  test('fetchTopicMetadata of an unknown topic does not create it (the admin client says so)', async () => {
    // The broker auto-creates topics here, but kafkajs's admin sends Metadata with
    // allow_auto_topic_creation=false, which must be honoured.
    const admin = await ctx.admin({ retry: { retries: 0 } })
    const topic = uniqueTopic('not-wanted')
    await assert.rejects(admin.fetchTopicMetadata({ topics: [topic] }), kafkaError('UNKNOWN_TOPIC_OR_PARTITION'))
    assert.ok(!(await admin.listTopics()).includes(topic))
  })

  test('describeCluster names this broker as the only node and the controller', async () => {
    const admin = await ctx.admin()
    const cluster = await admin.describeCluster()
    assert.deepEqual(cluster.brokers, [{ nodeId: 0, host: '127.0.0.1', port: ctx.broker.port }])
    assert.equal(cluster.controller, 0)
    assert.match(cluster.clusterId, /^[A-Za-z0-9_-]{22}$/)
  })
})
