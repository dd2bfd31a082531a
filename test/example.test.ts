import { once } from 'node:events'
import t from 'tap'
import { WebSocket } from 'ws'
import { closed, collect, nextMessage, runExample } from './helpers.js'

t.test('the example server prints working tokens, serves its page, and exits on SIGTERM after 1001 to clients', async (t) => {
  const { child, base, userToken, serviceToken } = await runExample(t, '../example/server.ts', { PORT: '0' })
  t.pass('prints the address and both tokens')

  const page = await fetch(`${base}/`)
  t.equal(page.status, 200)
  const html = await page.text()
  t.match(html, /new WebSocket\(url, \['fanout.v1', 'bearer.' \+ token\]\)/, 'the page connects with the subprotocol token')
  t.match(html, userToken, 'the development page carries a ready user token')

  const ws = new WebSocket(`${base.replace('http', 'ws')}/ws`, ['fanout.v1', `bearer.${userToken}`])
  t.teardown(() => ws.terminate())
  collect(ws)
  await once(ws, 'open')
  const arrival = nextMessage(ws)
  const response = await fetch(`${base}/broadcast`, {
    method: 'POST',
    headers: { authorization: `Bearer ${serviceToken}`, 'content-type': 'application/json' },
    body: '{"data":{"text":"hello"}}'
  })
  t.equal(response.status, 202, 'the printed service token may broadcast')
  t.same((await arrival).data, { text: 'hello' })

  const closing = closed(ws)
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  t.equal((await closing).code, 1001, 'clients get going-away')
  const [code] = await exited as [number]
  t.equal(code, 0, 'the process exits by itself')
})
