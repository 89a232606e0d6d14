'use strict'
// Topic auto-creation as kafkajs producers see it: on by default (a Metadata request for an
// unknown topic creates it with num_partitions), off with SLUICE_AUTO_CREATE_TOPICS=false
// (the producer gets UNKNOWN_TOPIC_OR_PARTITION and nothing is created).

const assert = require('node:assert/strict')
const { describe, test } = require('node:test')

const { useBroker, kcatRead, uniqueTopic, errorTypes } = require('./support')


describe('auto-create on (the default)', () => {
  const ctx = useBroker()

  test('a producer writing to a new topic creates it with the default partition count', async () => {
    const topic = uniqueTopic('auto')
    const producer = await ctx.producer({ allowAutoTopicCreation: true })
    const [md] = await producer.send({ topic, acks: -1, messages: [{ key: 'k', value: 'first' }] })
    assert.deepEqual([md.partition, md.baseOffset, md.errorCode], [0, '0', 0])
    const admin = await ctx.admin()
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(topics[0].partitions.length, 1)
    const records = await kcatRead(ctx.broker, topic, 0)
    assert.deepEqual(records.map((r) => [r.offset, r.key, r.payload]), [[0, 'k', 'first']])
  })
})

describe('auto-create off (SLUICE_AUTO_CREATE_TOPICS=false)', () => {
  const ctx = useBroker({ env: { SLUICE_AUTO_CREATE_TOPICS: 'false' } })

  test('a producer writing to an unknown topic gets UNKNOWN_TOPIC_OR_PARTITION', async () => {
    const topic = uniqueTopic('missing')
    // The producer asks for auto-creation; the broker must refuse it.
    const producer = await ctx.producer(
      { allowAutoTopicCreation: true, retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 200 } },
      { retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 200 } }
    )
    await assert.rejects(producer.send({ topic, acks: -1, messages: [{ value: 'lost' }] }), (e) => {
      assert.ok(
        errorTypes(e).includes('UNKNOWN_TOPIC_OR_PARTITION'),
        `expected UNKNOWN_TOPIC_OR_PARTITION, got ${e.name}: ${e.message} [${errorTypes(e)}]`
      )
      return true
    })
    const admin = await ctx.admin()
    assert.ok(!(await admin.listTopics()).includes(topic), 'the topic was created anyway')

    // Created explicitly, the same topic takes the producer's records.
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] }), true)
    const again = await ctx.producer()
    const [md] = await again.send({ topic, acks: -1, messages: [{ partition: 1, value: 'kept' }] })
    assert.deepEqual([md.partition, md.baseOffset], [1, '0'])
    const records = await kcatRead(ctx.broker, topic, 1)
    assert.deepEqual(records.map((r) => [r.offset, r.payload]), [[0, 'kept']])
  })
})
