import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { WebSocket } from 'ws'
import { closed, collect, nextMessage } from './helpers.js'

const server = fileURLToPath(new URL('../example/server.ts', import.meta.url))

t.test('the example server prints working tokens, serves its page, and exits on SIGTERM after 1001 to clients', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', server], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', JWT_SECRET: '', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  t.teardown(() => { clearTimeout(killer); child.kill('SIGKILL') })

  let output = ''
  child.stdout.setEncoding('utf8')
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: string) => {
      output += chunk
      if (output.includes('curl -X POST')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`example exited early with ${code}: ${output}`)))
  })

  const base = /listening on (http:\/\/\S+)/.exec(output)?.[1] as string
  const userToken = /user token: +(\S+)/.exec(output)?.[1] as string
  const serviceToken = /service token: +(\S+)/.exec(output)?.[1] as string
  t.ok(base !== undefined && userToken !== undefined && serviceToken !== undefined, 'prints the address and both tokens')

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
