import fs from 'node:fs'
import {createRequire} from 'node:module'
import {usageError} from '../errors.js'
import type {HostSpec} from './resolve.js'

/**
 * An Ansible inventory file read as Ansible reads it (INI or YAML; never by running Ansible):
 * groups, `children`, group `vars`, host vars, and the connection variables `ansible_host`,
 * `ansible_user` and `ansible_port`. A host's name is its inventory hostname; its address is
 * `ansible_host` or that name. `all` holds every host; hosts outside any group are `ungrouped`.
 */
export interface Inventory {
  /** Every host by inventory hostname, with its own vars (group vars not yet applied). */
  hosts: Map<string, Record<string, string>>
  groups: Map<string, {hosts: string[]; children: string[]; vars: Record<string, string>}>
}

/** Reads `file` and returns the hosts of `group` (default `all`), in inventory order. */
export function inventoryHosts(file: string, group = 'all', from = 'inventory'): HostSpec[] {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    throw usageError(
      `${from}: ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      'Give the path of an Ansible inventory file (INI or YAML), relative to the config file.',
    )
  }
  const inv = parseInventory(text, file)
  return hostsOfGroup(inv, group, file)
}

/** YAML when the file looks like YAML (an `all:`-style mapping), INI otherwise. */
export function parseInventory(text: string, file: string): Inventory {
  const yamlish = /\.ya?ml$/i.test(file) || /^[A-Za-z0-9_.-]+:\s*(#.*)?$/m.test(text.split('\n').find(meaningful) ?? '')
  return yamlish ? parseYamlInventory(text, file) : parseIniInventory(text, file)
}

const meaningful = (line: string) => line.trim() !== '' && !/^\s*[#;]/.test(line) && line.trim() !== '---'

function emptyInventory(): Inventory {
  return {hosts: new Map(), groups: new Map([['all', {hosts: [], children: [], vars: {}}]])}
}

function group(inv: Inventory, name: string) {
  let g = inv.groups.get(name)
  if (!g) inv.groups.set(name, (g = {hosts: [], children: [], vars: {}}))
  return g
}

function addHost(inv: Inventory, groupName: string, name: string, vars: Record<string, string>): void {
  const own = inv.hosts.get(name) ?? {}
  inv.hosts.set(name, {...own, ...vars})
  const g = group(inv, groupName)
  if (!g.hosts.includes(name)) g.hosts.push(name)
}

/** `[group]`, `[group:children]`, `[group:vars]`; host lines `name key=value …`; `web[01:03]` ranges. */
function parseIniInventory(text: string, file: string): Inventory {
  const inv = emptyInventory()
  let section = 'ungrouped'
  let kind: 'hosts' | 'children' | 'vars' = 'hosts'
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/\s+[#;].*$/, '').trim()
    if (!meaningful(line)) return
    const head = /^\[([^\]:]+)(?::(children|vars))?\]$/.exec(line)
    if (head) {
      section = head[1]!.trim()
      kind = (head[2] as 'children' | 'vars' | undefined) ?? 'hosts'
      group(inv, section)
      return
    }
    if (line.startsWith('[')) throw badInventory(file, i + 1, `"${line}" is not a [group] header`)
    const words = splitWords(line)
    if (kind === 'children') {
      const g = group(inv, section)
      if (!g.children.includes(words[0]!)) g.children.push(words[0]!)
      group(inv, words[0]!)
      return
    }
    if (kind === 'vars') {
      const kv = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line)
      if (!kv) throw badInventory(file, i + 1, `"${line}" is not key=value`)
      group(inv, section).vars[kv[1]!] = unquote(kv[2]!)
      return
    }
    const [name, ...rest] = words
    const vars: Record<string, string> = {}
    for (const w of rest) {
      const kv = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(w)
      if (!kv) throw badInventory(file, i + 1, `"${w}" after host ${name} is not key=value`)
      vars[kv[1]!] = unquote(kv[2]!)
    }
    for (const h of expandRange(name!, file, i + 1)) addHost(inv, section, h, vars)
  })
  return inv
}

/** Words split on blanks, keeping quoted values (`k="a b"`) whole. */
function splitWords(line: string): string[] {
  return line.match(/(?:[^\s"']+|"[^"]*"|'[^']*')+/g) ?? []
}

function unquote(v: string): string {
  const t = v.trim()
  return /^(["']).*\1$/.test(t) ? t.slice(1, -1) : t
}

/** Ansible's host ranges: `web[01:03]` → web01, web02, web03; `[a:c]` letters. */
function expandRange(name: string, file: string, line: number): string[] {
  const m = /^(.*)\[([0-9a-z]+):([0-9a-z]+)\](.*)$/.exec(name)
  if (!m) return [name]
  const [, pre, a, b, post] = m
  if (/^\d+$/.test(a!) && /^\d+$/.test(b!)) {
    const width = a!.startsWith('0') ? a!.length : 0
    const out: string[] = []
    for (let n = Number(a); n <= Number(b); n++) out.push(`${pre}${String(n).padStart(width, '0')}${post}`)
    if (out.length > 0) return out
  } else if (/^[a-z]$/.test(a!) && /^[a-z]$/.test(b!) && a! <= b!) {
    const out: string[] = []
    for (let c = a!.charCodeAt(0); c <= b!.charCodeAt(0); c++) out.push(`${pre}${String.fromCharCode(c)}${post}`)
    return out
  }
  throw badInventory(file, line, `host range ${name} is empty or malformed`)
}

/**
 * The `yaml` package, loaded only for a YAML inventory: every config load reaches this module, and
 * parsing 116 KB of bundled parser on each start cost more than the rare inventory needs.
 */
const parseYaml = (text: string): unknown =>
  (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse(text)

/** `all: {hosts: {name: {vars}}, vars: {}, children: {group: {hosts, vars, children}}}`. */
function parseYamlInventory(text: string, file: string): Inventory {
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (err) {
    throw usageError(`inventory ${file}: not valid YAML: ${(err as Error).message}`, 'Fix the inventory file.')
  }
  if (doc === null || doc === undefined) return emptyInventory()
  if (!isObject(doc)) throw usageError(`inventory ${file}: expected a mapping of groups (all: …)`)
  const inv = emptyInventory()
  const walk = (name: string, body: unknown, where: string) => {
    const g = group(inv, name)
    if (body === null || body === undefined) return
    if (!isObject(body)) throw usageError(`inventory ${file}: ${where} must be a mapping with hosts/children/vars`)
    for (const key of Object.keys(body)) {
      if (!['hosts', 'children', 'vars'].includes(key))
        throw usageError(`inventory ${file}: ${where}.${key}: unknown key (expected hosts, children or vars)`)
    }
    const hosts = body.hosts ?? {}
    if (!isObject(hosts)) throw usageError(`inventory ${file}: ${where}.hosts must be a mapping of host names`)
    for (const [h, vars] of Object.entries(hosts)) {
      for (const hn of expandRange(h, file, 0)) addHost(inv, name, hn, stringVars(vars, file, `${where}.hosts.${h}`))
    }
    Object.assign(g.vars, stringVars(body.vars ?? {}, file, `${where}.vars`))
    const children = body.children ?? {}
    if (!isObject(children)) throw usageError(`inventory ${file}: ${where}.children must be a mapping of groups`)
    for (const [child, childBody] of Object.entries(children)) {
      if (!g.children.includes(child)) g.children.push(child)
      walk(child, childBody, `${where}.children.${child}`)
    }
  }
  for (const [name, body] of Object.entries(doc)) walk(name, body, name)
  return inv
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function stringVars(v: unknown, file: string, where: string): Record<string, string> {
  if (v === null || v === undefined) return {}
  if (!isObject(v)) throw usageError(`inventory ${file}: ${where} must be a mapping of variables`)
  return Object.fromEntries(
    Object.entries(v)
      .filter(([, x]) => ['string', 'number', 'boolean'].includes(typeof x))
      .map(([k, x]) => [k, String(x)]),
  )
}

function badInventory(file: string, line: number, why: string) {
  return usageError(`inventory ${file}:${line}: ${why}`, 'Fix the inventory file (Ansible INI or YAML format).')
}

/**
 * The hosts of `name` and of its children, recursively, each with its vars: `all`'s, then each
 * group's on the way down (a child's override its parent's), then the host's own.
 */
export function hostsOfGroup(inv: Inventory, name: string, file: string): HostSpec[] {
  if (name !== 'all' && !inv.groups.has(name)) {
    const known = [...inv.groups.keys()].filter(
      (g) => g !== 'all' && group(inv, g).hosts.length + group(inv, g).children.length > 0,
    )
    throw usageError(
      `group: ${name} is not a group of inventory ${file}`,
      `Groups there: ${known.length ? known.join(', ') : '(none)'}; or leave group out for all hosts.`,
    )
  }
  const found = new Map<string, Record<string, string>>()
  const seen = new Set<string>()
  const visit = (g: string, inherited: Record<string, string>) => {
    if (seen.has(g)) return // a cycle in children: each group once
    seen.add(g)
    const body = group(inv, g)
    const vars = {...inherited, ...body.vars}
    for (const h of body.hosts) found.set(h, {...(found.get(h) ?? {}), ...vars})
    for (const c of body.children) visit(c, vars)
  }
  if (name === 'all') {
    const allVars = group(inv, 'all').vars
    for (const h of inv.hosts.keys()) found.set(h, {...allVars})
    // Group vars apply in the order groups appear; the host's own vars win.
    seen.add('all')
    for (const g of inv.groups.keys()) if (g !== 'all') visit(g, allVars)
    for (const h of group(inv, 'all').hosts) found.set(h, {...allVars, ...found.get(h)})
  } else {
    visit(name, group(inv, 'all').vars)
  }
  return [...found].map(([hostName, vars]) => toHostSpec(hostName, {...vars, ...inv.hosts.get(hostName)}, file))
}

function toHostSpec(name: string, vars: Record<string, string>, file: string): HostSpec {
  const {ansible_host: address, ansible_user: user, ansible_port: port, ...rest} = vars
  const p = port === undefined ? undefined : Number(port)
  if (p !== undefined && !(Number.isInteger(p) && p >= 1 && p <= 65535))
    throw usageError(`inventory ${file}: host ${name}: ansible_port=${port} is not a port number`)
  return {name, address: address ?? name, ...(user ? {user} : {}), ...(p ? {port: p} : {}), vars: rest}
}
