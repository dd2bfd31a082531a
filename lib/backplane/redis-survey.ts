import type { Cluster, Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import { SurveyFailedError } from '../errors.js'
import type { FanoutMetrics } from '../metrics.js'
import type { SurveyQuestion, SurveyResponder } from './types.js'

// A survey over Redis Pub/Sub, on the channels every instance holds anyway
// (so a Redis ACL that grants the plugin its channels needs nothing more).
// The question goes out on the everyone-channel, and PUBLISH answers with
// how many subscribers received it: the number of instances. Each answers
// on the asker's instance channel, and the asker waits for that many answers.
// Envelopes start with `{"v":`; survey messages with their own member:
//   question  {"survey":{"id":"<asker>.<n>","from":"<asker>","q":{"kind":"channels"}}}
//   answer    {"answer":{"id":"<asker>.<n>","a":<any JSON>}}

interface Pending {
  readonly answers: unknown[]
  /** Instances that received the question (from PUBLISH's reply, which may come after some answers). */
  expected: number | undefined
  readonly timer: NodeJS.Timeout
  readonly settle: (error: Error | undefined) => void
}

export interface RedisSurveysOptions {
  readonly publisher: Redis | Cluster
  readonly sharded: boolean
  /** The everyone-channel: questions go out there. */
  readonly allChannel: string
  /** An instance's own channel: its answers come there. */
  readonly instanceChannel: (instanceId: string) => string
  readonly instanceId: string
  readonly metrics: FanoutMetrics
  readonly log: FastifyBaseLogger
  /** Whether Redis is reachable now. */
  readonly up: () => boolean
}

const QUESTION = Buffer.from('{"survey":')
const ANSWER = Buffer.from('{"answer":')

export class RedisSurveys {
  readonly #options: RedisSurveysOptions
  readonly #pending = new Map<string, Pending>()
  #respond: SurveyResponder | undefined
  #sequence = 0

  constructor (options: RedisSurveysOptions) {
    this.#options = options
  }

  start (respond: SurveyResponder): void {
    this.#respond = respond
  }

  /** Handles a survey's question or answer; false for anything else (an envelope). */
  receive (message: Buffer): boolean {
    // An envelope's third byte is the `v` of `{"v":`: one comparison on the hot path.
    if (message[2] === 0x76) return false
    if (startsWith(message, QUESTION)) {
      this.#answer(message)
      return true
    }
    if (startsWith(message, ANSWER)) {
      this.#collect(message)
      return true
    }
    return false
  }

  async ask (question: SurveyQuestion, timeout: number): Promise<unknown[]> {
    const { instanceId, publisher, sharded } = this.#options
    if (!this.#options.up()) throw new SurveyFailedError('Redis is unreachable')
    const id = `${instanceId}.${++this.#sequence}`
    const request = JSON.stringify({ survey: { id, from: instanceId, q: question } })
    return await new Promise<unknown[]>((resolve, reject) => {
      const pending: Pending = {
        answers: [],
        expected: undefined,
        timer: setTimeout(() => {
          const { expected, answers } = pending
          pending.settle(new SurveyFailedError(`${answers.length} of ${expected ?? 'the'} instances answered within ${timeout} ms`))
        }, timeout),
        settle: (error) => {
          clearTimeout(pending.timer)
          this.#pending.delete(id)
          if (error === undefined) resolve(pending.answers)
          else reject(error)
        }
      }
      this.#pending.set(id, pending)
      const channel = this.#options.allChannel
      const published = sharded ? publisher.spublish(channel, request) : publisher.publish(channel, request)
      published.then((count) => {
        pending.expected = Number(count)
        this.#check(pending)
      }, (err: Error) => {
        this.#options.metrics.backplaneErrors.inc({ operation: 'survey' })
        pending.settle(new SurveyFailedError(`Redis refused the question: ${err.message}`))
      })
    })
  }

  /** Ends every survey in progress (the backplane is closing). */
  close (): void {
    this.#respond = undefined
    for (const pending of [...this.#pending.values()]) pending.settle(new SurveyFailedError('the instance is closing'))
  }

  #check (pending: Pending): void {
    if (pending.expected !== undefined && pending.answers.length >= pending.expected) pending.settle(undefined)
  }

  #answer (message: Buffer): void {
    const request = (parse(message) as { survey?: unknown } | null)?.survey
    const respond = this.#respond
    if (!isQuestion(request) || respond === undefined) {
      if (respond !== undefined) this.#options.metrics.backplaneInvalid.inc()
      return
    }
    let answer: string
    try {
      answer = JSON.stringify({ answer: { id: request.id, a: respond(request.q) } })
    } catch (err) {
      // Unanswered, the asker times out and says so; the cause is logged here.
      this.#options.log.error({ err }, 'fanout: could not answer a survey')
      return
    }
    const { publisher, sharded } = this.#options
    const channel = this.#options.instanceChannel(request.from)
    const sent = sharded ? publisher.spublish(channel, answer) : publisher.publish(channel, answer)
    sent.catch((err: Error) => {
      this.#options.metrics.backplaneErrors.inc({ operation: 'survey' })
      this.#options.log.debug({ err }, 'fanout: could not answer a survey')
    })
  }

  #collect (message: Buffer): void {
    const reply = (parse(message) as { answer?: { id?: unknown, a?: unknown } } | null)?.answer
    if (reply === undefined || reply === null || typeof reply !== 'object' || typeof reply.id !== 'string' || !('a' in reply)) {
      this.#options.metrics.backplaneInvalid.inc()
      return
    }
    const pending = this.#pending.get(reply.id)
    if (pending === undefined) return // answered after its survey timed out
    pending.answers.push(reply.a)
    this.#check(pending)
  }
}

function startsWith (message: Buffer, start: Buffer): boolean {
  return message.length > start.length && message.compare(start, 0, start.length, 0, start.length) === 0
}

function parse (message: Buffer): unknown {
  try {
    return JSON.parse(message.toString())
  } catch {
    return null
  }
}

function isQuestion (value: unknown): value is { id: string, from: string, q: SurveyQuestion } {
  if (value === undefined || value === null || typeof value !== 'object') return false
  const { id, from, q } = value as Record<string, unknown>
  if (typeof id !== 'string' || typeof from !== 'string' || q === null || typeof q !== 'object') return false
  const { kind, pattern } = q as Record<string, unknown>
  return kind === 'node' || (kind === 'channels' && (pattern === undefined || typeof pattern === 'string'))
}
