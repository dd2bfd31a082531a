// Property: whatever body a service posts, /broadcast answers 202 or a 4xx
// with a documented code; never a 500. Bodies the schema accepts get 202,
// bodies it refuses get 400 FST_FANOUT_INVALID_BROADCAST.
import fc from 'fast-check'
import t from 'tap'
import { anyBodyText, invalidBody, validBody } from '../arbitraries.js'
import { build, serviceToken } from '../helpers.js'
import { fuzzParameters } from './harness.js'

// Fastify's own codes for bodies its JSON parser refuses.
const PARSER_CODES = new Set(['FST_ERR_CTP_INVALID_JSON_BODY', 'FST_ERR_CTP_EMPTY_JSON_BODY'])

t.test('POST /broadcast: valid bodies 202, invalid ones 400, anything else never a 500', async (t) => {
  const { url } = await build(t)
  const jwt = serviceToken()
  async function post (body: string): Promise<{ status: number, code?: string, message?: string }> {
    const response = await fetch(`${url}/broadcast`, { method: 'POST', headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' }, body })
    return { status: response.status, ...await response.json() as { code?: string, message?: string } }
  }
  const describe = (body: string): string => body.length > 120 ? `${body.slice(0, 120)}… (${body.length} characters)` : body

  await fc.assert(fc.asyncProperty(validBody, async (body) => {
    const answer = await post(body)
    if (answer.status !== 202) throw new Error(`${describe(body)}: ${answer.status} ${answer.code ?? ''} ${answer.message ?? ''}`)
  }), fuzzParameters(150))

  await fc.assert(fc.asyncProperty(invalidBody, async (body) => {
    const answer = await post(body)
    if (answer.status !== 400 || answer.code !== 'FST_FANOUT_INVALID_BROADCAST') {
      throw new Error(`${describe(body)}: ${answer.status} ${answer.code ?? ''} ${answer.message ?? ''}`)
    }
  }), fuzzParameters(150))

  await fc.assert(fc.asyncProperty(anyBodyText, async (body) => {
    const answer = await post(body)
    const documented = answer.status === 202 ||
      (answer.status === 400 && (answer.code === 'FST_FANOUT_INVALID_BROADCAST' || PARSER_CODES.has(answer.code ?? '')))
    if (!documented) throw new Error(`${describe(body)}: ${answer.status} ${answer.code ?? ''} ${answer.message ?? ''}`)
  }), fuzzParameters(200))
  t.pass()
})
