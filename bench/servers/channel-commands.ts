// Channel commands a fastify-fanout benchmark server answers over IPC, beside
// common.ts's: a publish loop through the decorator, to measure what one
// publication costs (with or without history) apart from its deliveries.
import type { FastifyInstance } from 'fastify'

export interface PublishLoopCommand {
  cmd: 'publish-loop'
  /** Publications go to these channels in turn. */
  channels: string[]
  count: number
  /** Publications in flight at once. */
  concurrency: number
  /** approximate data size in bytes */
  size: number
}

export interface PublishLoopResult {
  publications: number
  failed: number
  /** The first failure's message, when some failed. */
  error?: string
  elapsed_ms: number
  cpu_user_us: number
  cpu_system_us: number
}

export function channelCommands (app: FastifyInstance): void {
  process.on('message', (message: { cmd: string }) => {
    if (message.cmd === 'publish-loop') {
      publishLoop(app, message as PublishLoopCommand).then((result) => process.send?.(result), (err: unknown) => { throw err })
    }
  })
}

async function publishLoop (app: FastifyInstance, command: PublishLoopCommand): Promise<PublishLoopResult> {
  const pad = 'x'.repeat(Math.max(0, command.size - 40))
  let next = 0
  let failed = 0
  let error: string | undefined
  const cpuBefore = process.cpuUsage()
  const started = performance.now()
  // `concurrency` lanes, each publishing as soon as its previous one settled.
  await Promise.all(Array.from({ length: command.concurrency }, async () => {
    while (next < command.count) {
      const seq = next++
      try {
        await app.fanout.publish(command.channels[seq % command.channels.length] as string, { seq, pad })
      } catch (err) {
        failed++
        error ??= (err as Error).message
      }
    }
  }))
  const elapsed = performance.now() - started
  const cpu = process.cpuUsage(cpuBefore)
  return { publications: command.count - failed, failed, error, elapsed_ms: elapsed, cpu_user_us: cpu.user, cpu_system_us: cpu.system }
}
