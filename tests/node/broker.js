'use strict'
// Starts and stops the real `sluice` binary for the kafkajs end-to-end tests (the Node twin
// of tests/e2e/broker.py).
//
// The binary is $SLUICE_BIN (tests/run sets it), else $CARGO_TARGET_DIR/debug/sluice, else
// ~/.cache/sluice-target/debug/sluice. Each broker listens on a free loopback port and keeps
// its data in a temporary directory it owns, so a test can kill it and restart it on the same
// data. Its stdout and stderr go to a log file next to the data; `logTail()` returns the end
// of it for failure reports.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const ROOT = path.resolve(__dirname, '..', '..')

function sluiceBin() {
  const candidates = process.env.SLUICE_BIN
    ? [process.env.SLUICE_BIN]
    : [
        process.env.CARGO_TARGET_DIR && path.join(process.env.CARGO_TARGET_DIR, 'debug', 'sluice'),
        path.join(os.homedir(), '.cache', 'sluice-target', 'debug', 'sluice'),
        path.join(ROOT, 'target', 'debug', 'sluice'),
      ].filter(Boolean)
  const found = candidates.find((p) => fs.existsSync(p))
  if (!found) {
    throw new Error(
      `sluice binary not found (looked at ${candidates.join(', ')}): run tests/run or ` +
        'cargo build --bin sluice'
    )
  }
  return found
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    const done = (ok) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

/** One sluice process; `start()` resolves once it accepts connections. */
class Broker {
  /**
   * @param {object} [options]
   * @param {Record<string, string>} [options.env] extra environment (e.g. SLUICE_AUTO_CREATE_TOPICS)
   * @param {string[]} [options.args] extra `sluice serve` flags
   * @param {number} [options.port] port to listen on (default: a free one)
   */
  constructor({ env = {}, args = [], port } = {}) {
    this.baseDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-node-'))
    this.dataDir = path.join(this.baseDir, 'data')
    this.env = env
    this.args = args
    this.port = port
    this.proc = null
    this.exited = null // { code, signal } of the last process once it exited
    this.logPath = null
  }

  get bootstrap() {
    return `127.0.0.1:${this.port}`
  }

  /** Starts the process (on the same port and data directory when restarting). */
  async start({ timeoutMs = 30000 } = {}) {
    if (this.proc && !this.exited) throw new Error('sluice is already running')
    if (!this.port) this.port = await freePort()
    this.logPath = this.logPath || path.join(this.baseDir, `sluice-${this.port}.log`)
    const log = fs.openSync(this.logPath, 'a')
    const proc = spawn(
      sluiceBin(),
      ['serve', '--listen', this.bootstrap, '--data-dir', this.dataDir, ...this.args],
      {
        cwd: this.baseDir, // so no config/sluice.toml of the repository is picked up
        env: { ...process.env, RUST_BACKTRACE: '1', NO_COLOR: '1', ...this.env },
        stdio: ['ignore', log, log],
      }
    )
    fs.closeSync(log)
    this.proc = proc
    this.exited = null
    this.exitPromise = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exited = { code, signal }
        resolve(this.exited)
      })
      proc.once('error', (err) => {
        this.exited = { code: null, signal: null, error: err }
        resolve(this.exited)
      })
    })
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (this.exited) {
        throw new Error(
          `sluice exited (${JSON.stringify(this.exited)}) before listening:\n${this.log()}`
        )
      }
      if (await canConnect(this.port)) return this
      await sleep(50)
    }
    throw new Error(`sluice did not listen on ${this.bootstrap} within ${timeoutMs} ms:\n${this.log()}`)
  }

  /** The whole broker log (every run of this broker). */
  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8')
    } catch {
      return ''
    }
  }

  /** The last `lines` lines of the broker log. */
  logTail(lines = 150) {
    // eslint-disable-next-line no-control-regex
    const plain = this.log().replace(/\x1b\[[0-9;]*m/g, '')
    return plain.split('\n').slice(-lines).join('\n')
  }

  /** Sends `signal` and waits for the exit; resolves to { code, signal }. */
  async signal(signal, timeoutMs = 30000) {
    if (!this.proc) return { code: 0, signal: null }
    if (this.exited) return this.exited
    this.proc.kill(signal)
    let timer
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs)
    })
    const result = await Promise.race([this.exitPromise, timeout])
    clearTimeout(timer)
    if (!result) {
      this.proc.kill('SIGKILL')
      await this.exitPromise
      throw new Error(`sluice did not stop on ${signal} within ${timeoutMs} ms:\n${this.logTail()}`)
    }
    return result
  }

  /** Clean shutdown: SIGTERM, and the process must exit with code 0. */
  async stop() {
    const { code, signal, error } = await this.signal('SIGTERM')
    if (error || code !== 0) {
      throw new Error(
        `sluice did not exit cleanly on SIGTERM (code ${code}, signal ${signal}` +
          `${error ? `, ${error.message}` : ''}):\n${this.logTail()}`
      )
    }
  }

  /** Kills the process with SIGKILL: no chance to flush or clean up. */
  async kill9() {
    const { signal } = await this.signal('SIGKILL')
    if (signal !== 'SIGKILL') throw new Error(`sluice exited on its own before SIGKILL:\n${this.logTail()}`)
  }

  /** Starts again on the same port and data directory (after stop() or kill9()). */
  async restart(options) {
    return this.start(options)
  }

  /** Stops the broker if it still runs (SIGKILL, no checks) and removes its directory. */
  async destroy({ keep = !!process.env.SLUICE_KEEP_TEST_DATA } = {}) {
    if (this.proc && !this.exited) {
      this.proc.kill('SIGKILL')
      await this.exitPromise
    }
    if (!keep) fs.rmSync(this.baseDir, { recursive: true, force: true })
  }
}

/** Creates and starts a broker. */
async function startBroker(options) {
  const broker = new Broker(options)
  try {
    return await broker.start()
  } catch (e) {
    await broker.destroy({ keep: true })
    throw e
  }
}

module.exports = { Broker, startBroker, freePort, sluiceBin, sleep }
