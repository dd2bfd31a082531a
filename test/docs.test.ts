// README.md and docs/ link to each other's sections; moving or renaming a
// heading must not leave a link that leads nowhere.
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
import { test } from 'tap'

const root = new URL('..', import.meta.url).pathname

function markdownFiles (dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return markdownFiles(path)
    return entry.name.endsWith('.md') ? [path] : []
  })
}

const withoutCode = (text: string): string => text.replace(/```[\s\S]*?```/g, '')

// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
const anchorOf = (heading: string): string => heading.trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, '').replace(/ /g, '-')

function anchorsOf (file: string): Set<string> {
  const anchors = new Set<string>()
  for (const match of withoutCode(readFileSync(join(root, file), 'utf8')).matchAll(/^#{1,6} (.+)$/gm)) {
    anchors.add(anchorOf(match[1]))
  }
  return anchors
}

test('every relative link in README.md and docs/ leads to a file and heading that exist', async (t) => {
  const files = ['README.md', 'CHANGELOG.md', ...markdownFiles('docs')]
  let checked = 0
  for (const file of files) {
    const text = withoutCode(readFileSync(join(root, file), 'utf8'))
    for (const [, link] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^(https?:|mailto:)/.test(link)) continue
      const [path, fragment] = link.split('#')
      const target = path === '' ? file : normalize(join(dirname(file), path))
      checked++
      if (!existsSync(join(root, target))) {
        t.fail(`${file}: ${link} leads to a missing file`)
        continue
      }
      if (fragment !== undefined && target.endsWith('.md')) {
        t.ok(anchorsOf(target).has(fragment), `${file}: ${link}`)
      }
    }
  }
  t.ok(checked > 20, `${checked} links checked`)
})
