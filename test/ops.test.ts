import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { parser } from '@prometheus-io/lezer-promql'
import { parse as parseYaml } from 'yaml'
import { clusterMetrics } from '../lib/index.js'
import { broadcast, build, closed, connect, rejectedUpgrade, sample, token, until } from './helpers.js'
import { sdk, sdkUrl, subscribed } from './centrifuge-helpers.js'
import { inspector, randomPrefix, startRedis } from './redis-helpers.js'

// The Grafana dashboard (ops/grafana) and the Prometheus alert rules
// (ops/prometheus) must only use metrics that exist: every PromQL expression
// in them is parsed with Prometheus's own grammar (lezer-promql), and each
// metric it selects must be in the scrape of a server that has run every
// feature that produces metrics. Renaming a metric, or a label value the
// rules select on, fails this test.
//
// promtool (Prometheus's rule checker) validates the rules and runs their
// unit tests (alerts.test.yml) where it is installed: Debian's `prometheus`
// package has it (.ci/run takes it out of the package; PROMTOOL names another
// path). Without it that part is skipped, saying why, except under CI.

const root = fileURLToPath(new URL('..', import.meta.url))
const DASHBOARD = 'ops/grafana/fastify-fanout.json'
const RULES = 'ops/prometheus/alerts.yml'
const RULE_TESTS = 'ops/prometheus/alerts.test.yml'
const DOCS = 'docs/operations.md'
// Grafana's reference to the dashboard's data source variable.
// eslint-disable-next-line no-template-curly-in-string -- Grafana's syntax, not a template literal
const DATASOURCE_VARIABLE = '${datasource}'

interface Panel { title?: string, type: string, panels?: Panel[], targets?: Array<{ expr: string }>, datasource?: { uid?: string } }
interface Dashboard { uid: string, title: string, panels: Panel[], templating: { list: Array<{ name: string, type: string, query: string | { query: string } }> } }
interface Rule { alert: string, expr: string, for?: string, labels?: Record<string, string>, annotations?: Record<string, string> }
interface Rules { groups: Array<{ name: string, rules: Rule[] }> }

const read = async (path: string): Promise<string> => await readFile(new URL(`../${path}`, import.meta.url), 'utf8')

function panelsOf (panels: Panel[]): Panel[] {
  return panels.flatMap((panel) => [panel, ...panelsOf(panel.panels ?? [])])
}

/** Every PromQL expression of the dashboard (panels, and the variables' label_values() selectors), by where it is. */
function dashboardExpressions (dashboard: Dashboard): Array<[string, string]> {
  const found: Array<[string, string]> = []
  for (const panel of panelsOf(dashboard.panels)) {
    for (const target of panel.targets ?? []) found.push([`panel "${panel.title ?? ''}"`, target.expr])
  }
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query') continue
    const query = typeof variable.query === 'string' ? variable.query : variable.query.query
    const selector = /^label_values\((.+),\s*\w+\)$/.exec(query)?.[1]
    found.push([`variable $${variable.name}`, selector ?? query])
  }
  return found
}

// Grafana's variables, as Prometheus would see them once Grafana put values in.
const GRAFANA_VALUES: Record<string, string> = { __rate_interval: '5m', __interval: '1m', __range: '1h', job: '.+', instance: '.+' }

interface Selector { metric: string, equal: Array<[string, string]> }

/** The metrics an expression selects and the label values it matches exactly; or what is wrong with it. */
function selectors (expression: string): { selectors: Selector[], errors: string[] } {
  const errors: string[] = []
  const promql = expression.replace(/\$\{?(\w+)\}?/g, (variable, name: string) => {
    const value = GRAFANA_VALUES[name]
    if (value === undefined) errors.push(`unknown Grafana variable ${variable}`)
    return value ?? variable
  })
  const found: Selector[] = []
  const text = (from: number, to: number): string => promql.slice(from, to)
  parser.parse(promql).iterate({
    enter (node) {
      if (node.type.isError && !errors.some((error) => error.startsWith('PromQL syntax error'))) {
        errors.push(`PromQL syntax error at ${node.from}: ${JSON.stringify(promql.slice(Math.max(0, node.from - 20), node.to + 20))}`)
      }
      if (node.name !== 'VectorSelector') return
      const identifier = node.node.getChild('Identifier')
      if (identifier === null) {
        errors.push(`a selector without a metric name: ${text(node.from, node.to)}`)
        return
      }
      const equal: Array<[string, string]> = []
      for (const matcher of node.node.getChild('LabelMatchers')?.getChildren('UnquotedLabelMatcher') ?? []) {
        const name = matcher.getChild('LabelName')
        const op = matcher.getChild('MatchOp')?.firstChild
        const value = matcher.getChild('StringLiteral')
        if (name === null || value === null || op?.name !== 'EqlSingle') continue
        equal.push([text(name.from, name.to), JSON.parse(text(value.from, value.to)) as string])
      }
      found.push({ metric: text(identifier.from, identifier.to), equal })
    }
  })
  return { selectors: found, errors }
}

/** What a scrape holds: each metric family's type, and each sample's name and labels. */
interface Scrape { types: Map<string, string>, samples: Array<{ name: string, labels: Record<string, string> }> }

function parseScrape (text: string): Scrape {
  const types = new Map<string, string>()
  const samples: Scrape['samples'] = []
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (type !== null) types.set(type[1] as string, type[2] as string)
    const sampleLine = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+$/.exec(line)
    if (sampleLine === null) continue
    const labels: Record<string, string> = {}
    for (const [, name, value] of (sampleLine[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[name as string] = value as string
    samples.push({ name: sampleLine[1] as string, labels })
  }
  return { types, samples }
}

// Labels that Prometheus adds to every series of a target: never in a scrape.
const TARGET_LABELS = new Set(['job', 'instance'])

/** What in `expressions` does not match `scrape`: unknown metrics, label values never seen, syntax errors. */
function problems (expressions: Array<[string, string]>, scrape: Scrape): string[] {
  const found: string[] = []
  const exists = (metric: string): boolean => {
    if (scrape.types.has(metric)) return true
    const family = /^(.*)_(bucket|sum|count)$/.exec(metric)
    const type = family === null ? undefined : scrape.types.get(family[1] as string)
    return type === 'histogram' || (type === 'summary' && family?.[2] !== 'bucket')
  }
  for (const [where, expression] of expressions) {
    const { selectors: used, errors } = selectors(expression)
    for (const error of errors) found.push(`${where}: ${error}`)
    for (const { metric, equal } of used) {
      if (!exists(metric)) {
        found.push(`${where}: ${metric} is not in the scrape`)
        continue
      }
      for (const [label, value] of equal) {
        if (TARGET_LABELS.has(label)) continue
        if (!scrape.samples.some((s) => s.name === metric && s.labels[label] === value)) found.push(`${where}: no ${metric} sample has ${label}="${value}"`)
      }
    }
  }
  return found
}

/** The metrics of a server that has run every feature that produces them, and of a cluster's primary. */
async function scrapeEverything (t: Test): Promise<Scrape> {
  const redis = await startRedis(t)
  const built = await build(t, {
    redis: redis.url,
    channelPrefix: randomPrefix(),
    centrifuge: { connectTimeout: 500 },
    maxConnections: 3,
    maxBufferedBytes: 64 * 1024,
    channels: { namespaces: { chat: { historySize: 10, historyTtl: 60_000, recovery: true, presence: true, publish: true } } }
  })
  const { app, url, wsUrl } = built
  // Rejections: no token; then a full instance.
  t.equal((await rejectedUpgrade(wsUrl)).status, 401)
  // Centrifugo's protocol: an SDK client subscribed to a channel with history; a command refused.
  const { client } = sdk(t, sdkUrl(built), { token: token({ sub: 'sdk' }) })
  client.connect()
  await subscribed(client, 'chat:room')
  await t.rejects(client.presence('nowhere:room'), { code: 102 }, 'a command answered with an error')
  t.equal((await broadcast(url, { channel: 'chat:room', data: { text: 'hello' } })).status, 202)
  // A slow consumer: a client that stops reading, closed once it is too far behind.
  const slow = await connect(t, wsUrl, token({ sub: 'slow' }))
  await connect(t, wsUrl, token({ sub: 'fast' }))
  const slowClosed = closed(slow)
  const socket = (slow as unknown as { _socket: { pause: () => void, resume: () => void } })._socket
  socket.pause()
  for (let sent = 0; sent < 4000 && !((await app.fanout.broadcast('x'.repeat(16 * 1024))).dropped ?? 0); sent++) {
    await new Promise((resolve) => setImmediate(resolve))
  }
  socket.resume()
  await slowClosed
  await until(() => app.fanout.size === 2, 'the server to let the slow consumer go')
  await connect(t, wsUrl, token({ sub: 'fourth' }))
  t.equal((await rejectedUpgrade(`${wsUrl}?token=${token({ sub: 'fifth' })}`)).status, 503, 'the instance is full')
  t.equal((await broadcast(url, { data: 'to all' })).status, 202)
  // A Redis gap: what Redis does to a subscriber past its output buffer limit.
  await inspector(t, redis.port).call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  await until(async () => app.fanout.backplaneUp &&
    sample(await app.fanout.metricsRegistry.metrics(), 'fanout_backplane_gaps_total', 'phase="restored"') === 1, 'the subscription to come back')

  const text = await (await fetch(`${url}/metrics`)).text()
  // A cluster's primary adds its own metrics to the workers'.
  const primary = Fastify()
  t.teardown(() => primary.close())
  await primary.register(clusterMetrics)
  const machine = await primary.inject('/metrics')
  t.equal(machine.statusCode, 200)
  return parseScrape(`${text}\n${machine.body}`)
}

t.test('every metric that the dashboard and the alert rules use is in the scrape', async (t) => {
  const scrape = await scrapeEverything(t)
  const dashboard = JSON.parse(await read(DASHBOARD)) as Dashboard
  const rules = parseYaml(await read(RULES)) as Rules
  const expressions = [
    ...dashboardExpressions(dashboard),
    ...rules.groups.flatMap((group) => group.rules.map((rule): [string, string] => [`alert ${rule.alert}`, rule.expr]))
  ]
  t.ok(expressions.length > 40, `${expressions.length} expressions`)
  t.same(problems(expressions, scrape), [])

  // What an operator watches is all there.
  const used = new Set(expressions.flatMap(([, expression]) => selectors(expression).selectors.map((s) => s.metric)))
  for (const metric of [
    'fanout_connections', 'fanout_messages_sent_total', 'fanout_messages_dropped_total', 'fanout_broadcast_duration_seconds_bucket',
    'fanout_backplane_up', 'fanout_connections_rejected_total', 'nodejs_eventloop_lag_p99_seconds', 'fanout_cluster_workers'
  ]) t.ok(used.has(metric), `${metric} is used`)

  // The check finds what it is for.
  const found = problems([
    ['renamed', 'sum(rate(fanout_messages_snt_total[5m]))'],
    ['a label value', 'rate(fanout_messages_dropped_total{reason="slow"}[5m])'],
    ['a typo', 'sum(rate(fanout_connections[5m])'],
    ['a variable', 'rate(fanout_broadcasts_total[$__rate_intervl])'],
    ['a summary has no buckets', 'http_request_summary_seconds_bucket'],
    ['fine', 'histogram_quantile(0.9, sum by (le) (rate(fanout_broadcast_duration_seconds_bucket{job=~"$job"}[$__rate_interval]))) and on (instance) http_request_summary_seconds_count offset 5m']
  ], scrape)
  t.equal(found.length, 6, found.join('\n'))
  t.match(found, [
    'renamed: fanout_messages_snt_total is not in the scrape',
    'a label value: no fanout_messages_dropped_total sample has reason="slow"',
    /^a typo: PromQL syntax error/,
    'a variable: unknown Grafana variable $__rate_intervl',
    /^a variable: PromQL syntax error/,
    'a summary has no buckets: http_request_summary_seconds_bucket is not in the scrape'
  ])
})

t.test('the dashboard: a data source variable, job and instance variables, and every panel on the chosen data source', async (t) => {
  const dashboard = JSON.parse(await read(DASHBOARD)) as Dashboard
  t.equal(dashboard.uid, 'fastify-fanout')
  const variables = new Map(dashboard.templating.list.map((variable) => [variable.name, variable]))
  t.match(variables.get('datasource'), { type: 'datasource', query: 'prometheus' })
  t.match(variables.get('job'), { type: 'query' })
  t.match(variables.get('instance'), { type: 'query' })
  const panels = panelsOf(dashboard.panels).filter((panel) => panel.type !== 'row')
  t.ok(panels.length >= 20, `${panels.length} panels`)
  t.same(panels.filter((panel) => panel.datasource?.uid !== DATASOURCE_VARIABLE).map((panel) => panel.title), [], 'every panel queries the chosen data source')
  const unscoped = dashboardExpressions(dashboard).filter(([where, expression]) => where.startsWith('panel') &&
    selectors(expression).selectors.some((s) => !/job=~"\$job"/.test(expression) || !/instance=~"\$instance"/.test(expression)))
  t.same(unscoped, [], 'every panel selects $job and $instance')
})

t.test('the alert rules: each with a duration, a severity, a summary, a description and a runbook, documented in docs/operations.md', async (t) => {
  const rules = parseYaml(await read(RULES)) as Rules
  const docs = await read(DOCS)
  const all = rules.groups.flatMap((group) => group.rules)
  t.ok(all.length >= 10, `${all.length} alerts`)
  t.equal(new Set(all.map((rule) => rule.alert)).size, all.length, 'alert names are unique')
  for (const rule of all) {
    t.match(rule, {
      alert: /^Fanout[A-Z]\w+$/,
      expr: String,
      labels: { severity: /^(warning|critical)$/ },
      annotations: { summary: String, description: String, runbook: String }
    }, rule.alert)
    if (rule.for !== undefined) t.match(rule.for, /^\d+[smh]$/, `${rule.alert}: for`)
    const anchor = rule.annotations?.runbook?.match(/docs\/operations\.md#([\w-]+)/)?.[1]
    const heading = new RegExp(`^#+ ${rule.alert}$`, 'm')
    t.match(docs, heading, `${rule.alert} has a section in ${DOCS}`)
    t.ok(anchor === undefined || anchor === rule.alert.toLowerCase(), `${rule.alert}: the runbook link leads to its section`)
  }
})

const promtool = process.env.PROMTOOL ?? 'promtool'
const run = promisify(execFile)
const promtoolMissing = await run(promtool, ['--version']).then(() => undefined, (err: Error) => `no promtool (${err.message.split('\n')[0] ?? ''}): Debian's prometheus package has it, or set PROMTOOL`)

t.test('promtool accepts the rules and their unit tests pass', {
  skip: promtoolMissing !== undefined && (process.env.CI === undefined || process.env.CI === '') ? promtoolMissing : false
}, async (t) => {
  if (promtoolMissing !== undefined) throw new Error(`${promtoolMissing} (CI must install it before npm test)`)
  const check = await run(promtool, ['check', 'rules', RULES], { cwd: root })
  t.match(check.stdout, /SUCCESS: \d+ rules found/)
  const unit = await run(promtool, ['test', 'rules', RULE_TESTS], { cwd: root })
  t.match(unit.stdout, /SUCCESS/)
})
