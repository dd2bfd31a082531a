import t from 'tap'
import { build, connect, nextMessage, broadcast } from './helpers.js'

t.test('smoke', async (t) => {
  const { url, wsUrl } = await build(t)
  const ws = await connect(t, wsUrl)
  const got = nextMessage(ws)
  const res = await broadcast(url, { data: { hello: 'world' } })
  t.equal(res.status, 202)
  console.log(await res.json())
  const msg = await got
  t.same(msg.data, { hello: 'world' })
})
