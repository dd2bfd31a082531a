import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { Cluster, Redis } from 'ioredis'

// Below Linux's ephemeral range (32768-60999 by default), where the OS picks
// the local ports of outgoing connections and of listen(0): a port released
// there can be taken by any test's client socket before the server that was
// meant for it binds (seen: a cluster example whose workers found their port
// taken, EADDRINUSE, and restarted until the test timed out).
const LOW_PORTS = { from: 20_000, to: 32_767 }

/** Whether a server can listen on `port` of 127.0.0.1 right now. */
export async function canListen (port: number): Promise<boolean> {
  const server = createServer()
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', () => { resolve(false) })
    server.listen(port, '127.0.0.1', () => { resolve(true) })
  })
  if (listening) {
    server.close()
    await once(server, 'close')
  }
  return listening
}

/** A TCP port on 127.0.0.1 that is free now, for a server a test starts later (or restarts) on a fixed port. */
export async function freePort (): Promise<number> {
  for (;;) {
    const port = LOW_PORTS.from + Math.floor(Math.random() * (LOW_PORTS.to - LOW_PORTS.from + 1))
    if (await canListen(port)) return port
  }
}

/** A redis-server of the test's own, which the test may kill and restart. */
export interface RedisServer {
  readonly port: number
  readonly url: string
  readonly pid: number | undefined
  /** Kills the server (SIGKILL: as abrupt as a crash) and waits until it is gone. */
  kill: () => Promise<void>
  /** Starts it again on the same port. */
  restart: () => Promise<void>
}

/** Starts `redis-server` on `port` (nothing kept on disk) and resolves once it accepts connections. */
export async function spawnRedis (port: number, extra: string[] = []): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extra], {
    stdio: ['ignore', 'pipe', 'inherit']
  })
  let output = ''
  child.stdout?.setEncoding('utf8')
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server on ${port} did not start: ${output}`)), 10_000)
    child.stdout?.on('data', (chunk: string) => {
      output += chunk
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer)
        child.stdout?.removeAllListeners('data')
        child.stdout?.resume()
        resolve()
      }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`redis-server on ${port} exited with ${code}: ${output}`)) })
  })
  return child
}

async function stop (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
}

/**
 * Starts a redis-server on a free port (the arguments may take more free
 * ports), and again on others when one was taken meanwhile: test files run
 * side by side, and another may have picked the same port between the check
 * and the bind.
 */
async function spawnOnFreePort (args: (port: number) => Promise<string[]>): Promise<{ port: number, child: ChildProcess }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    try {
      return { port, child: await spawnRedis(port, await args(port)) }
    } catch (err) {
      if (attempt === 5 || !(err as Error).message.includes('Address already in use')) throw err
    }
  }
}

/** Starts a redis-server on a free port; stopped by PID when the test ends. */
export async function startRedis (t: Test, extra: string[] = []): Promise<RedisServer> {
  const started = await spawnOnFreePort(async () => extra)
  const { port } = started
  let child = started.child
  t.teardown(async () => { await stop(child) })
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid () { return child.pid },
    kill: async () => { await stop(child) },
    restart: async () => { child = await spawnRedis(port, extra) }
  }
}

/** A random channel prefix, so that tests never see each other's messages. */
export function randomPrefix (): string {
  return `test-${randomBytes(4).toString('hex')}:`
}

/** A plain client for inspecting Redis from a test; closed when the test ends. */
export function inspector (t: Test, port: number): Redis {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: false, maxRetriesPerRequest: 1 })
  t.teardown(() => { client.disconnect() })
  return client
}

/** A three-master Redis Cluster on free ports, built from redis-server binaries. */
export async function startCluster (t: Test): Promise<number[]> {
  const ports: number[] = []
  const work = await mkdtemp(join(tmpdir(), 'fanout-cluster-'))
  const children: ChildProcess[] = []
  t.teardown(async () => {
    for (const child of children) await stop(child)
    await rm(work, { recursive: true, force: true })
  })
  for (let node = 0; node < 3; node++) {
    // The bus port defaults to port + 10000, which lands in the ephemeral
    // range; pick it from the low range too (a CI run lost a node to it).
    const { port, child } = await spawnOnFreePort(async (port) => [
      '--cluster-enabled', 'yes', '--cluster-port', String(await freePort()), '--cluster-config-file', join(work, `nodes-${port}.conf`), '--dir', work
    ])
    ports.push(port)
    children.push(child)
  }
  const create = spawn('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  create.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  create.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  const [code] = await once(create, 'exit') as [number]
  if (code !== 0) throw new Error(`redis-cli --cluster create failed: ${output}`)
  // Wait until every node sees the cluster as ok.
  for (const port of ports) {
    const client = new Redis({ port, host: '127.0.0.1' })
    const deadline = Date.now() + 10_000
    while (!String(await client.cluster('INFO')).includes('cluster_state:ok')) {
      if (Date.now() > deadline) throw new Error('cluster did not become ok')
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    client.disconnect()
  }
  return ports
}

/** An ioredis Cluster client for `startCluster`'s nodes; disconnected when the test ends. */
export function clusterClient (t: Test, ports: number[]): Cluster {
  const client = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })))
  t.teardown(() => { client.disconnect() })
  return client
}
