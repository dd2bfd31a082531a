// The package as adopters get it: packed, checked by publint and
// @arethetypeswrong/cli, installed from the tarball into a fresh project
// beside the oldest release of each peer dependency (Fastify, @fastify/jwt), type-checked under
// strict TypeScript as ES module and CommonJS apps, and run on the Node.js
// under test (CI runs this on 20, 22 and 24, so require(esm) is checked on each).
import { execFile } from 'node:child_process'
import { copyFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t, { test } from 'tap'

// Packing, installing and compiling take a while on two busy cores.
t.setTimeout(300_000)

const run = promisify(execFile)
const root = new URL('..', import.meta.url).pathname
const fixtures = join(root, 'test', 'fixtures', 'consumer')
const require = createRequire(import.meta.url)
const tsc = require.resolve('typescript/bin/tsc')
const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
  peerDependencies: Record<string, string>
  files: string[]
}

// The lowest version a caret range admits: what an app on an older release has.
function oldestOf (range: string): string {
  const match = /^\^(\d+\.\d+\.\d+)$/.exec(range)
  if (match === null) throw new Error(`peer range ${range} is not a caret range; teach this test its floor`)
  return match[1]
}

interface Dependency { version?: string, dependencies?: Record<string, Dependency> }

/** Every version of `name` anywhere in an `npm ls --json` tree. */
function versionsOf (name: string, tree: Dependency, found = new Set<string>()): Set<string> {
  for (const [dependency, node] of Object.entries(tree.dependencies ?? {})) {
    if (dependency === name && node.version !== undefined) found.add(node.version)
    versionsOf(name, node, found)
  }
  return found
}

async function sh (command: string, args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await run(command, args, { cwd, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' } })
    return stdout
  } catch (error) {
    const failed = error as { stdout?: string, stderr?: string, message: string }
    throw new Error(`${command} ${args.join(' ')} failed in ${cwd}:\n${failed.stdout ?? ''}\n${failed.stderr ?? ''}\n${failed.message}`)
  }
}

test('the packed package installs, type-checks and runs in a fresh app', { timeout: 240_000 }, async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'fanout-consumer-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))

  // prepack builds dist/ first, as for a publish.
  await sh('npm', ['pack', '--silent', '--pack-destination', work], root)
  const tarball = join(work, (await readdir(work)).find((name) => name.endsWith('.tgz')) ?? 'missing.tgz')

  await t.test('publint finds nothing to fix', async (t) => {
    const output = await sh(process.execPath, [join(root, 'node_modules', 'publint', 'src', 'cli.js'), 'run', tarball, '--strict'], root)
    t.match(output, /All good/)
  })

  await t.test('arethetypeswrong resolves the types under every module resolution', async (t) => {
    // require() of an ES module is allowed from Node.js 20.19 and 22.12, the
    // supported range; attw still flags it, so that one rule is waived.
    const attw = join(root, 'node_modules', '@arethetypeswrong', 'cli', 'dist', 'index.js')
    const output = await sh(process.execPath, [attw, tarball, '--ignore-rules', 'cjs-resolves-to-esm', '--format', 'json'], root)
    const report = JSON.parse(output) as { analysis: { problems: Array<{ kind: string }> } }
    const problems = report.analysis.problems.map((problem) => problem.kind).filter((kind) => kind !== 'CJSResolvesToESM')
    t.same(problems, [])
  })

  const app = join(work, 'app')
  await sh('mkdir', ['-p', app], work)
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true }))
  const peers = Object.entries(manifest.peerDependencies).map(([name, range]) => ({ name, version: oldestOf(range) }))
  await sh('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball,
    ...peers.map(({ name, version }) => `${name}@${version}`), '@types/node@20'], app)

  await t.test('the app keeps one copy of each peer: its own, however old', async (t) => {
    for (const { name, version } of peers) {
      const tree = JSON.parse(await sh('npm', ['ls', name, '--all', '--json'], app)) as Dependency
      t.same([...versionsOf(name, tree)], [version], name)
    }
  })

  await t.test('no install-time script runs for the tarball', async (t) => {
    const installed = JSON.parse(await readFile(join(app, 'node_modules', 'fastify-fanout', 'package.json'), 'utf8')) as { scripts?: Record<string, string> }
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) t.notOk(installed.scripts?.[hook], hook)
  })

  await t.test('the source maps lead to files that ship', async (t) => {
    const installed = join(app, 'node_modules', 'fastify-fanout')
    const map = JSON.parse(await readFile(join(installed, 'dist', 'lib', 'index.js.map'), 'utf8')) as { sources: string[] }
    for (const source of map.sources) {
      await t.resolves(readFile(join(installed, 'dist', 'lib', source)), source)
    }
  })

  for (const file of ['app.mts', 'app.cts']) await copyFile(join(fixtures, file), join(app, file))
  // The README's quick start, exactly as written, must compile too.
  const readme = await readFile(join(app, 'node_modules', 'fastify-fanout', 'README.md'), 'utf8')
  const quickStart = /<!-- quick-start -->\s*```ts\n([\s\S]*?)```/.exec(readme)
  t.ok(quickStart, 'README marks its quick start with <!-- quick-start -->')
  await writeFile(join(app, 'readme.mts'), quickStart?.[1] ?? '')
  await writeFile(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { strict: true, module: 'nodenext', target: 'es2022', skipLibCheck: false, outDir: 'out', types: ['node'] },
    files: ['app.mts', 'app.cts', 'readme.mts']
  }))

  await t.test('strict TypeScript accepts the ES module app, the CommonJS app and the README', async (t) => {
    t.equal(await sh(process.execPath, [tsc, '-p', '.'], app), '')
  })

  await t.test('the ES module app runs', async (t) => {
    const output = JSON.parse(await sh(process.execPath, ['out/app.mjs'], app)) as Record<string, unknown>
    t.same(output, { status: 401, code: 'FST_FANOUT_TOKEN_MISSING', delivered: 0, goingAway: 1001, errorCode: 'FST_FANOUT_INVALID_OPTION', appToken: 'string' })
  })

  await t.test('the CommonJS app runs (require of the ES module)', async (t) => {
    const output = JSON.parse(await sh(process.execPath, ['out/app.cjs'], app)) as Record<string, unknown>
    t.same(output, { delivered: 0, goingAway: 1001 })
  })

  await t.test('plain require() hands Fastify a plugin it registers', async (t) => {
    const script = "const app = require('fastify')(); app.register(require('fastify-fanout'), { jwt: { secret: 'x'.repeat(32) } });" +
      'app.ready().then(() => { process.stdout.write(typeof app.fanout.broadcast); return app.close() })'
    t.equal(await sh(process.execPath, ['-e', script], app), 'function')
  })
})
