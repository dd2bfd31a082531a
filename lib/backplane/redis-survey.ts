import type { Cluster, Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import { SurveyFailedError } from '../errors.js'
import type { FanoutMetrics } from '../metrics.js'
import type { SurveyQuestion, SurveyResponder } from './types.js'

// A survey over Redis Pub/Sub. The question goes out on the survey channel,
// to which every instance subscribes, and PUBLISH answers with how many
// subscribers received it: the number of instances. Each answers on the
// asker's reply channel, and the asker waits for that many answers.
//   question  {"id":"<asker>.<n>","from":"<asker>","q":{"kind":"channels"}}
//   answer    {"id":"<asker>.<n>","a":<any JSON>}

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
  readonly prefix: string
  readonly instanceId: string
  readonly metrics: FanoutMetrics
  readonly log: FastifyBaseLogger
  /** Whether Redis is reachable now. */
  readonly up: () => boolean
}

export class RedisSurveys {
  /** The channel every instance hears questions on. */
  readonly questions: string
  /** This instance's channel for answers. */
  readonly answers: string
  readonly #questionsName: Buffer
  readonly #answersName: Buffer
  readonly #options: RedisSurveysOptions
  readonly #pending = new Map<string, Pending>()
  #respond: SurveyResponder | undefined
  #sequence = 0

  constructor (options: RedisSurveysOptions) {
    this.#options = options
    this.questions = options.prefix + 'survey'
    this.answers = this.#answersOf(options.instanceId)
    this.#questionsName = Buffer.from(this.questions)
    this.#answersName = Buffer.from(this.answers)
  }

  start (respond: SurveyResponder): void {
    this.#respond = respond
  }

  /** Handles a message of a survey channel; false for any other channel's (an envelope). */
  receive (channel: Buffer, message: Buffer): boolean {
    if (channel.equals(this.#questionsName)) {
      this.#answer(message)
      return true
    }
    if (channel.equals(this.#answersName)) {
      this.#collect(message)
      return true
    }
    return false
  }

  async ask (question: SurveyQuestion, timeout: number): Promise<unknown[]> {
    const { instanceId, publisher, sharded } = this.#options
    if (!this.#options.up()) throw new SurveyFailedError('Redis is unreachable')
    const id = `${instanceId}.${++this.#sequence}`
    const request = JSON.stringify({ id, from: instanceId, q: question })
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
      const published = sharded ? publisher.spublish(this.questions, request) : publisher.publish(this.questions, request)
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
    const request = parse(message)
    const respond = this.#respond
    if (!isQuestion(request) || respond === undefined) {
      if (respond !== undefined) this.#options.metrics.backplaneInvalid.inc()
      return
    }
    let answer: string
    try {
      answer = JSON.stringify({ id: request.id, a: respond(request.q) })
    } catch (err) {
      // Unanswered, the asker times out and says so; the cause is logged here.
      this.#options.log.error({ err }, 'fanout: could not answer a survey')
      return
    }
    const { publisher, sharded } = this.#options
    const channel = this.#answersOf(request.from)
    const sent = sharded ? publisher.spublish(channel, answer) : publisher.publish(channel, answer)
    sent.catch((err: Error) => {
      this.#options.metrics.backplaneErrors.inc({ operation: 'survey' })
      this.#options.log.debug({ err }, 'fanout: could not answer a survey')
    })
  }

  #collect (message: Buffer): void {
    const reply = parse(message) as { id?: unknown, a?: unknown } | null
    if (reply === null || typeof reply !== 'object' || typeof reply.id !== 'string' || !('a' in reply)) {
      this.#options.metrics.backplaneInvalid.inc()
      return
    }
    const pending = this.#pending.get(reply.id)
    if (pending === undefined) return // answered after its survey timed out
    pending.answers.push(reply.a)
    this.#check(pending)
  }

  #answersOf (instanceId: string): string {
    return this.#options.prefix + 'survey-answers:' + instanceId
  }
}

function parse (message: Buffer): unknown {
  try {
    return JSON.parse(message.toString())
  } catch {
    return null
  }
}

function isQuestion (value: unknown): value is { id: string, from: string, q: SurveyQuestion } {
  if (value === null || typeof value !== 'object') return false
  const { id, from, q } = value as Record<string, unknown>
  if (typeof id !== 'string' || typeof from !== 'string' || q === null || typeof q !== 'object') return false
  const { kind, pattern } = q as Record<string, unknown>
  return kind === 'node' || (kind === 'channels' && (pattern === undefined || typeof pattern === 'string'))
}
