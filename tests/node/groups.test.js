'use strict'
// Consumer groups as kafkajs users see them: a consumer group reads back what a producer
// wrote (keys, headers, timestamps, per-partition order) and commits its position; members
// share partitions and take over a leaver's partitions without losing records or
// re-processing committed ones; a member may still commit once a rebalance has started (as
// Kafka allows, for commits on revocation); a restarted consumer, or one started after the
// broker was killed with SIGKILL and restarted, resumes at the committed offsets; the admin
// client lists, describes, inspects, resets and deletes groups.
//
// The brokers run with short group timings (GROUP_TEST_ENV) and the consumers with matching
// timeouts (CONSUMER_TIMEOUTS), so a rebalance takes about a second.

const assert = require('node:assert/strict')
const { describe, test } = require('node:test')
const { AssignerProtocol } = require('kafkajs')

const {
  useBroker,
  uniqueTopic,
  uniqueGroup,
  consumedRecord,
  committed,
  waitCommitted,
  highWatermarks,
  waitFor,
  errorTypes,
  GROUP_TEST_ENV,
} = require('./support')
const { sleep } = require('./broker')

/** Explicit CreateTime timestamps: an hour ago, one millisecond apart (inside retention). */
const BASE_TS = Date.now() - 3600 * 1000

const range = (n) => Array.from({ length: n }, (_, i) => i)
const byNumber = (a, b) => a - b

/**
 * Starts a kafkajs consumer in group `groupId` reading `topic` from the beginning (when the
 * group has no committed offset) with eachMessage and the default auto-commit (after every
 * batch, and when a rebalance is noticed). Returns its state, kept current by its events:
 * `assignment` (partitions of its last GROUP_JOIN), `memberId`, `isLeader`, `messages`
 * (everything eachMessage saw). When a `timeline` is given, joins, processed records and
 * successful commits of every member sharing it are appended there in the order they happen;
 * `session` counts the member's joins, so a record is attributed to the generation that
 * processed it. `onMessage(record)`, if given, is awaited after each record is recorded.
 */
async function startMember(ctx, { groupId, topic, name, timeline = [], options = {}, kafkaConfig = {}, onMessage }) {
  const clientId = `${name}-${process.pid}`
  const consumer = await ctx.consumer({ groupId, ...options }, { clientId, ...kafkaConfig })
  const member = {
    name,
    clientId,
    consumer,
    session: 0,
    memberId: null,
    isLeader: false,
    assignment: [],
    messages: [],
  }
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    member.session += 1
    member.memberId = payload.memberId
    member.isLeader = payload.isLeader
    member.assignment = [...(payload.memberAssignment[topic] || [])].sort(byNumber)
    timeline.push({ type: 'join', member: name, session: member.session, assignment: member.assignment })
  })
  consumer.on(consumer.events.COMMIT_OFFSETS, ({ payload }) => {
    for (const t of payload.topics) {
      for (const p of t.partitions) {
        timeline.push({
          type: 'commit',
          member: name,
          session: member.session,
          partition: Number(p.partition),
          offset: Number(p.offset),
        })
      }
    }
  })
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const record = consumedRecord(partition, message)
      member.messages.push(record)
      timeline.push({ type: 'message', member: name, session: member.session, partition, offset: record.offset })
      if (onMessage) await onMessage(record)
    },
  })
  return member
}

/** Offsets of `messages` on each partition, in the order they were processed. */
function offsetsByPartition(messages, partitions) {
  return range(partitions).map((p) => messages.filter((m) => m.partition === p).map((m) => m.offset))
}

/** DescribeGroups of one group. */
async function describeGroup(admin, groupId) {
  const { groups } = await admin.describeGroups([groupId])
  assert.equal(groups.length, 1)
  assert.equal(groups[0].groupId, groupId)
  return groups[0]
}

/** The partitions of `topic` in a DescribeGroups member's assignment (decoded). */
function describedPartitions(member, topic) {
  const decoded = AssignerProtocol.MemberAssignment.decode(member.memberAssignment)
  return [...((decoded && decoded.assignment[topic]) || [])].sort(byNumber)
}

/**
 * Waits until the group is Stable with exactly `members`, each holding the assignment the
 * broker reports for it, `perMember` partitions each, together every partition of `topic`.
 */
async function waitForSplit(admin, groupId, topic, members, { partitions, perMember }) {
  let last = null
  await waitFor(
    `${members.length} members with ${perMember} partitions each`,
    async () => {
      const group = await describeGroup(admin, groupId)
      last = {
        state: group.state,
        described: group.members.map((m) => [m.memberId, describedPartitions(m, topic)]),
        joined: members.map((m) => [m.memberId, m.assignment]),
      }
      if (group.state !== 'Stable' || group.members.length !== members.length) return false
      const described = new Map(group.members.map((m) => [m.memberId, describedPartitions(m, topic)]))
      return members.every(
        (m) =>
          m.assignment.length === perMember &&
          JSON.stringify(described.get(m.memberId)) === JSON.stringify(m.assignment)
      )
    },
    { timeoutMs: 30000, state: () => last }
  )
  assert.deepEqual(members.flatMap((m) => m.assignment).sort(byNumber), range(partitions))
}

/**
 * Checks delivery through rebalances from a shared timeline, partition by partition:
 * - each run of records processed by one member in one generation is contiguous;
 * - a run starts at or above the offset committed last (nothing committed is processed
 *   again) and at most one past the highest offset processed so far (nothing is skipped);
 * - committed offsets never go back, nor past what was processed.
 * Records processed again (beyond the previous owner's last commit) are counted.
 */
function deliveryProblems(timeline, partitions) {
  const problems = []
  let reprocessed = 0
  for (let p = 0; p < partitions; p++) {
    let lastCommitted = 0 // a new group reading from the beginning
    let highest = -1
    let runOwner = null
    let previous = -1
    const seen = new Set()
    for (const event of timeline) {
      if (event.partition !== p) continue
      const owner = `${event.member} (join ${event.session})`
      if (event.type === 'commit') {
        if (event.offset < lastCommitted) {
          problems.push(`p${p}: ${owner} committed ${event.offset} after ${lastCommitted} was committed`)
        }
        if (event.offset > highest + 1) {
          problems.push(`p${p}: ${owner} committed ${event.offset}, but only ${highest} was processed`)
        }
        lastCommitted = event.offset
        continue
      }
      if (event.type !== 'message') continue
      if (owner !== runOwner) {
        if (event.offset < lastCommitted) {
          problems.push(`p${p}: ${owner} started at ${event.offset}, below the committed ${lastCommitted}`)
        }
        if (event.offset > highest + 1) {
          problems.push(`p${p}: ${owner} started at ${event.offset}, skipping ${highest + 1}..${event.offset - 1}`)
        }
        runOwner = owner
      } else if (event.offset !== previous + 1) {
        problems.push(`p${p}: ${owner} went from offset ${previous} to ${event.offset}`)
      }
      if (seen.has(event.offset)) reprocessed++
      seen.add(event.offset)
      previous = event.offset
      highest = Math.max(highest, event.offset)
    }
  }
  return { problems, reprocessed }
}

/**
 * Produces one record to every partition of `topic` each `everyMs` until `stop()`, which
 * resolves to the values written, by partition, in offset order (checked against the
 * offsets the broker acknowledged).
 */
function produceContinuously(producer, topic, partitions, everyMs = 20) {
  const written = range(partitions).map(() => [])
  let running = true
  const done = (async () => {
    for (let seq = 0; running; seq++) {
      const messages = range(partitions).map((p) => ({ partition: p, key: `k${p}`, value: `p${p}-s${seq}` }))
      const metadata = await producer.send({ topic, acks: -1, messages })
      for (const md of metadata) {
        assert.equal(Number(md.baseOffset), written[md.partition].length, `p${md.partition} offset`)
        written[md.partition].push(`p${md.partition}-s${seq}`)
      }
      await sleep(everyMs)
    }
    return written
  })()
  done.catch(() => {}) // reported by stop()
  return {
    written,
    stop: () => {
      running = false
      return done
    },
  }
}

/** Sends `count` records to each partition (values `${tag}-p${p}-${i}`); returns the values. */
async function produceEach(producer, topic, partitions, count, tag) {
  const messages = range(partitions).flatMap((p) =>
    range(count).map((i) => ({ partition: p, key: `k${i}`, value: `${tag}-p${p}-${i}` }))
  )
  await producer.send({ topic, acks: -1, messages })
  return range(partitions).map((p) => range(count).map((i) => `${tag}-p${p}-${i}`))
}

describe('kafkajs consumer groups', () => {
  const ctx = useBroker({ env: GROUP_TEST_ENV })

  test('a consumer group reads keys, headers and timestamps in order and commits its offsets', async () => {
    const topic = uniqueTopic('roundtrip')
    const groupId = uniqueGroup('roundtrip')
    const admin = await ctx.admin()
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] })
    const producer = await ctx.producer()
    const expected = [[], [], []] // per partition, in offset order
    for (let round = 0, n = 0; round < 3; round++) {
      const messages = range(10).map(() => {
        const i = n++
        return {
          partition: i % 3,
          key: `key-${i}`,
          value: JSON.stringify({ i, round }),
          timestamp: String(BASE_TS + i),
          headers: { source: 'kafkajs', seq: String(i), multi: ['a', `b${i}`] },
        }
      })
      await producer.send({ topic, acks: -1, messages })
      for (const m of messages) expected[m.partition].push(m)
    }

    const member = await startMember(ctx, { groupId, topic, name: 'roundtrip' })
    assert.deepEqual(member.assignment, [0, 1, 2])
    await waitFor('30 records', () => member.messages.length >= 30, { state: () => member.messages.length })
    for (let p = 0; p < 3; p++) {
      assert.deepEqual(
        member.messages.filter((m) => m.partition === p).map(({ partition, ...rest }) => rest),
        expected[p].map((m, offset) => ({
          offset,
          key: m.key,
          value: m.value,
          timestamp: m.timestamp,
          headers: { source: 'kafkajs', seq: m.headers.seq, multi: ['a', m.headers.multi[1]] },
        })),
        `partition ${p} as the consumer saw it`
      )
    }
    await waitCommitted(admin, groupId, topic, [10, 10, 10])

    // Leaving the group keeps the committed offsets.
    await member.consumer.disconnect()
    assert.deepEqual(await committed(admin, groupId, topic), [10, 10, 10])
    const group = await describeGroup(admin, groupId)
    assert.deepEqual([group.state, group.members], ['Empty', []])
  })

  test('three members share six partitions; the two left take over a leaver\'s without loss', async (t) => {
    const PARTITIONS = 6
    const topic = uniqueTopic('rebalance')
    const groupId = uniqueGroup('rebalance')
    const admin = await ctx.admin()
    await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }] })
    const production = produceContinuously(await ctx.producer(), topic, PARTITIONS)

    const timeline = []
    const members = await Promise.all(
      ['member-a', 'member-b', 'member-c'].map((name) => startMember(ctx, { groupId, topic, name, timeline }))
    )
    await waitForSplit(admin, groupId, topic, members, { partitions: PARTITIONS, perMember: 2 })
    const group = await describeGroup(admin, groupId)
    assert.equal(group.protocolType, 'consumer')
    assert.deepEqual(group.members.map((m) => m.clientId).sort(), members.map((m) => m.clientId).sort())
    await waitFor('every member to process records', () => members.every((m) => m.messages.length > 0))

    // The leader leaves (LeaveGroup on disconnect): the others rejoin, one becomes leader.
    const leaver = members.find((m) => m.isLeader)
    assert.ok(leaver, 'one member is the leader')
    const orphaned = leaver.assignment
    await leaver.consumer.disconnect()
    const rest = members.filter((m) => m !== leaver)
    await waitForSplit(admin, groupId, topic, rest, { partitions: PARTITIONS, perMember: 3 })
    assert.equal(rest.filter((m) => m.isLeader).length, 1, 'one of the two is the leader')
    const takenOver = timeline.length
    await waitFor(`records of ${leaver.name}'s partitions ${orphaned} processed by the others`, () =>
      orphaned.every((p) => timeline.slice(takenOver).some((e) => e.type === 'message' && e.partition === p))
    )

    const written = await production.stop()
    const highs = written.map((values) => values.length)
    t.diagnostic(`produced ${highs.reduce((a, b) => a + b)} records: ${highs}`)
    const processed = () => offsetsByPartition(members.flatMap((m) => m.messages), PARTITIONS)
    await waitFor(
      'every produced record processed',
      () => processed().every((offsets, p) => range(highs[p]).every((o) => offsets.includes(o))),
      { state: () => processed().map((o) => o.length) }
    )
    await waitCommitted(admin, groupId, topic, highs)
    for (const m of rest) await m.consumer.disconnect()

    // What was read is what was written, and nothing beyond it.
    for (const m of members) {
      for (const r of m.messages) {
        assert.equal(r.value, written[r.partition][r.offset], `${m.name} p${r.partition}@${r.offset}`)
      }
    }
    const { problems, reprocessed } = deliveryProblems(timeline, PARTITIONS)
    t.diagnostic(`${reprocessed} records processed again after a rebalance (past the last commit)`)
    assert.deepEqual(problems, [])
    assert.equal((await describeGroup(admin, groupId)).state, 'Empty')
  })

  test('a member can commit while the group prepares a rebalance (before it rejoins)', async () => {
    // The Java consumer commits in onPartitionsRevoked, and kafkajs when a heartbeat reports
    // the rebalance, both before rejoining: Kafka accepts commits of the current generation
    // in PreparingRebalance (only CompletingRebalance answers REBALANCE_IN_PROGRESS).
    const topic = uniqueTopic('commit-in-rebalance')
    const groupId = uniqueGroup('commit-in-rebalance')
    const admin = await ctx.admin()
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] })
    await produceEach(await ctx.producer(), topic, 2, 3, 'r')

    // This member heartbeats only every 5 s, so it learns of the rebalance a newcomer starts
    // late; meanwhile it is still a member of the current generation.
    const slow = await startMember(ctx, {
      groupId,
      topic,
      name: 'slow-member',
      options: { autoCommit: false, heartbeatInterval: 5000, retry: { retries: 0, restartOnFailure: async () => false } },
    })
    await waitFor('6 records', () => slow.messages.length >= 6)
    const joining = startMember(ctx, { groupId, topic, name: 'newcomer' }) // waits for the rebalance
    joining.catch(() => {})
    await waitFor('the group to prepare a rebalance', async () =>
      (await describeGroup(admin, groupId)).state === 'PreparingRebalance'
    )
    let commitError = null
    try {
      await slow.consumer.commitOffsets([{ topic, partition: 0, offset: '2' }])
    } catch (e) {
      commitError = e
    }
    const { state } = await describeGroup(admin, groupId)
    const committedThen = await committed(admin, groupId, topic)

    const newcomer = await joining
    await waitForSplit(admin, groupId, topic, [slow, newcomer], { partitions: 2, perMember: 1 })
    await newcomer.consumer.disconnect()
    await slow.consumer.disconnect()

    assert.equal(state, 'PreparingRebalance', 'the commit was made while the group prepared a rebalance')
    if (commitError) {
      assert.fail(`OffsetCommit in PreparingRebalance failed: ${commitError.message} [${errorTypes(commitError)}]`)
    }
    assert.equal(committedThen[0], 2, 'the offset committed in PreparingRebalance is stored')
  })

  test('a consumer restarted in the same group resumes at the committed offsets', async () => {
    const topic = uniqueTopic('resume')
    const groupId = uniqueGroup('resume')
    const admin = await ctx.admin()
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] })
    const producer = await ctx.producer()
    const first = await produceEach(producer, topic, 2, 5, 'first')

    const before = await startMember(ctx, { groupId, topic, name: 'before-restart' })
    await waitFor('10 records', () => before.messages.length >= 10)
    await waitCommitted(admin, groupId, topic, [5, 5])
    await before.consumer.disconnect()
    assert.deepEqual(offsetsByPartition(before.messages, 2), [range(5), range(5)])
    assert.deepEqual(range(2).map((p) => before.messages.filter((m) => m.partition === p).map((m) => m.value)), first)

    const second = await produceEach(producer, topic, 2, 3, 'second')
    // fromBeginning applies only without a committed offset: nothing before 5 comes again.
    const after = await startMember(ctx, { groupId, topic, name: 'after-restart' })
    await waitFor('6 records', () => after.messages.length >= 6, { state: () => after.messages })
    await waitCommitted(admin, groupId, topic, [8, 8])
    await after.consumer.disconnect()
    assert.deepEqual(offsetsByPartition(after.messages, 2), [[5, 6, 7], [5, 6, 7]])
    assert.deepEqual(range(2).map((p) => after.messages.filter((m) => m.partition === p).map((m) => m.value)), second)
  })

  test('admin: listGroups, describeGroups, fetchOffsets with lag, setOffsets, resetOffsets, deleteGroups', async () => {
    const topic = uniqueTopic('admin-groups')
    const groupId = uniqueGroup('admin-groups')
    const admin = await ctx.admin({ retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 200 } })
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] })
    const producer = await ctx.producer()
    await produceEach(producer, topic, 2, 4, 'a')

    const member = await startMember(ctx, { groupId, topic, name: 'admin-member' })
    await waitFor('8 records', () => member.messages.length >= 8)
    await waitCommitted(admin, groupId, topic, [4, 4])

    const { groups } = await admin.listGroups()
    assert.deepEqual(groups.filter((g) => g.groupId === groupId), [{ groupId, protocolType: 'consumer' }])

    const group = await describeGroup(admin, groupId)
    assert.equal(group.errorCode, 0)
    assert.equal(group.state, 'Stable')
    assert.equal(group.protocolType, 'consumer')
    assert.equal(group.protocol, 'RoundRobinAssigner')
    assert.equal(group.members.length, 1)
    const [described] = group.members
    assert.equal(described.memberId, member.memberId)
    assert.equal(described.clientId, member.clientId)
    assert.match(described.clientHost, /127\.0\.0\.1/)
    assert.deepEqual(AssignerProtocol.MemberAssignment.decode(described.memberAssignment).assignment, {
      [topic]: [0, 1],
    })
    assert.deepEqual(AssignerProtocol.MemberMetadata.decode(described.memberMetadata).topics, [topic])

    // A group with a member cannot be deleted.
    await assert.rejects(admin.deleteGroups([groupId]), (e) => {
      assert.ok(errorTypes(e).includes('NON_EMPTY_GROUP'), `${e.name}: ${e.message} [${errorTypes(e)}]`)
      assert.deepEqual(e.groups.map((g) => [g.groupId, g.errorCode]), [[groupId, 68]])
      return true
    })
    await member.consumer.disconnect()
    assert.equal((await describeGroup(admin, groupId)).state, 'Empty')

    // Lag: high watermark minus committed offset.
    await producer.send({ topic, acks: -1, messages: [{ partition: 0, value: 'x' }, { partition: 0, value: 'y' }] })
    const highs = await highWatermarks(admin, topic)
    const offsets = await committed(admin, groupId, topic)
    assert.deepEqual(highs, [6, 4])
    assert.deepEqual(offsets.map((o, p) => highs[p] - o), [2, 0])

    // setOffsets (a group without members): a consumer starts where it says.
    await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '1' }, { partition: 1, offset: '3' }] })
    assert.deepEqual(await committed(admin, groupId, topic), [1, 3])
    const reader = await startMember(ctx, { groupId, topic, name: 'after-set-offsets' })
    await waitFor('6 records', () => reader.messages.length >= 6)
    await waitCommitted(admin, groupId, topic, [6, 4])
    await reader.consumer.disconnect()
    assert.deepEqual(offsetsByPartition(reader.messages, 2), [[1, 2, 3, 4, 5], [3]])

    // resetOffsets to the earliest: kafkajs commits -2 ("earliest"), which the broker keeps
    // as it is; a consumer then starts from the log start.
    await admin.resetOffsets({ groupId, topic, earliest: true })
    assert.deepEqual(await committed(admin, groupId, topic), [-2, -2])
    const rereader = await startMember(ctx, { groupId, topic, name: 'after-reset-offsets' })
    await waitFor('10 records', () => rereader.messages.length >= 10)
    await waitCommitted(admin, groupId, topic, [6, 4])
    await rereader.consumer.disconnect()
    assert.deepEqual(offsetsByPartition(rereader.messages, 2), [range(6), range(4)])

    // An empty group is deleted with its offsets.
    assert.deepEqual(await admin.deleteGroups([groupId]), [{ groupId, errorCode: 0 }])
    assert.ok(!(await admin.listGroups()).groups.some((g) => g.groupId === groupId), 'deleted group listed')
    assert.deepEqual(await committed(admin, groupId, topic), [-1, -1])
    assert.equal((await describeGroup(admin, groupId)).state, 'Dead')
    await assert.rejects(admin.deleteGroups([groupId]), (e) => {
      assert.ok(errorTypes(e).includes('GROUP_ID_NOT_FOUND'), `${e.name}: ${e.message} [${errorTypes(e)}]`)
      return true
    })
  })
})

describe('kafkajs consumer groups across a broker crash', () => {
  const ctx = useBroker({ env: GROUP_TEST_ENV })

  test('after kill -9 and a restart, a new consumer resumes at the committed offsets', async (t) => {
    const topic = uniqueTopic('crash')
    const groupId = uniqueGroup('crash')
    const admin = await ctx.admin()
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] })
    const producer = await ctx.producer()
    await produceEach(producer, topic, 2, 10, 'before')

    // No retries and no restart: once the broker is gone, this consumer stays down.
    const crashed = await startMember(ctx, {
      groupId,
      topic,
      name: 'crashed',
      options: { retry: { retries: 0, restartOnFailure: async () => false } },
      kafkaConfig: { retry: { retries: 0 } },
    })
    await waitFor('20 records', () => crashed.messages.length >= 20)
    await waitCommitted(admin, groupId, topic, [10, 10])
    await admin.disconnect()
    await producer.disconnect()

    // The broker dies with the member still in the group; the member gives up.
    await ctx.broker.kill9()
    await crashed.consumer.disconnect().catch(() => {})
    await ctx.broker.restart()

    const admin2 = await ctx.admin()
    assert.deepEqual(await committed(admin2, groupId, topic), [10, 10], 'committed offsets after the restart')
    const group = await describeGroup(admin2, groupId)
    t.diagnostic(`after the restart the group is ${group.state} with ${group.members.length} member(s)`)

    const producer2 = await ctx.producer()
    const after = await produceEach(producer2, topic, 2, 2, 'after')
    // The crashed member's session must expire before the new one gets partitions.
    const resumed = await startMember(ctx, { groupId, topic, name: 'resumed' })
    await waitFor('4 records', () => resumed.messages.length >= 4, { timeoutMs: 30000 })
    await waitCommitted(admin2, groupId, topic, [12, 12])
    await resumed.consumer.disconnect()
    assert.deepEqual(offsetsByPartition(resumed.messages, 2), [[10, 11], [10, 11]])
    assert.deepEqual(range(2).map((p) => resumed.messages.filter((m) => m.partition === p).map((m) => m.value)), after)
  })
})
