import fs from 'node:fs'
import path from 'node:path'
import {describe, expect, it} from 'vitest'
import {parseConfig} from '../../src/config/load.js'
import {forHost, limitHosts, planWaves} from '../../src/config/hosts.js'
import {parseInventory, hostsOfGroup} from '../../src/config/inventory.js'
import type {HostSpec} from '../../src/config/resolve.js'
import {EXIT} from '../../src/errors.js'
import {catchHotctl, tmpDir} from './helpers.js'

const INI = `# production
bastion ansible_host=10.0.0.1

[web]
web1 ansible_host=192.168.1.11 ansible_user=deploy ansible_port=2222 region=eu
web2 ansible_host=192.168.1.12
web[03:04]

[db]
db1 ansible_host=192.168.1.21 role="primary db"

[prod:children]
web
db

[web:vars]
region=us
tier=front
`

const YAML = `all:
  vars:
    ansible_user: ops
  hosts:
    bastion:
      ansible_host: 10.0.0.1
  children:
    web:
      vars:
        tier: front
      hosts:
        web1:
          ansible_host: 192.168.1.11
          ansible_port: 2222
          ansible_user: deploy
        web2:
          ansible_host: 192.168.1.12
    prod:
      children:
        web:
        db:
          hosts:
            db1: {ansible_host: 192.168.1.21, role: primary}
`

const names = (hosts: HostSpec[]) => hosts.map((h) => h.name)

describe('Ansible inventory, INI', () => {
  const inv = parseInventory(INI, '/x/hosts.ini')
  it('a group: its hosts with connection vars, group vars under host vars, ranges expanded', () => {
    const web = hostsOfGroup(inv, 'web', 'hosts.ini')
    expect(names(web)).toEqual(['web1', 'web2', 'web03', 'web04'])
    expect(web[0]).toEqual({
      name: 'web1',
      address: '192.168.1.11',
      user: 'deploy',
      port: 2222,
      vars: {region: 'eu', tier: 'front'},
    })
    expect(web[1]).toEqual({name: 'web2', address: '192.168.1.12', vars: {region: 'us', tier: 'front'}})
    expect(web[2]!.address).toBe('web03')
  })
  it('children groups, quoted values, and all (ungrouped hosts included)', () => {
    expect(names(hostsOfGroup(inv, 'prod', 'hosts.ini'))).toEqual(['web1', 'web2', 'web03', 'web04', 'db1'])
    expect(hostsOfGroup(inv, 'db', 'hosts.ini')[0]!.vars).toEqual({role: 'primary db'})
    expect(names(hostsOfGroup(inv, 'all', 'hosts.ini'))).toEqual(['bastion', 'web1', 'web2', 'web03', 'web04', 'db1'])
  })
  it('an unknown group is a usage error naming it and the groups there', () => {
    const e = catchHotctl(() => hostsOfGroup(inv, 'webz', 'hosts.ini'))
    expect(e.exitCode).toBe(EXIT.usage)
    expect(e.message).toMatch(/group: webz is not a group of inventory hosts.ini/)
    expect(e.hint).toMatch(/web, db, prod/)
  })
  it('a malformed line names file and line', () => {
    const e = catchHotctl(() => parseInventory('[web]\nweb1 ansible_port\n', 'bad.ini'))
    expect(e.message).toMatch(/inventory bad.ini:2: "ansible_port" after host web1 is not key=value/)
  })
})

describe('Ansible inventory, YAML', () => {
  const inv = parseInventory(YAML, '/x/hosts.yml')
  it('hosts, children, group and all vars; the host var wins', () => {
    const web = hostsOfGroup(inv, 'web', 'hosts.yml')
    expect(web).toEqual([
      {name: 'web1', address: '192.168.1.11', user: 'deploy', port: 2222, vars: {tier: 'front'}},
      {name: 'web2', address: '192.168.1.12', user: 'ops', vars: {tier: 'front'}},
    ])
    expect(names(hostsOfGroup(inv, 'prod', 'hosts.yml'))).toEqual(['web1', 'web2', 'db1'])
    expect(names(hostsOfGroup(inv, 'all', 'hosts.yml'))).toEqual(['bastion', 'web1', 'web2', 'db1'])
  })
  it('detected without a .yml name, and unknown keys are errors naming the path', () => {
    expect(names(hostsOfGroup(parseInventory(YAML, '/x/inventory'), 'web', 'inventory'))).toEqual(['web1', 'web2'])
    const e = catchHotctl(() => parseInventory('all:\n  host:\n    a:\n', 'i.yml'))
    expect(e.message).toMatch(/all\.host: unknown key/)
  })
})

describe('config: inventory, group, hosts', () => {
  function withInventory(text: string, file: string, extra: Record<string, unknown> = {}) {
    const dir = tmpDir()
    fs.writeFileSync(path.join(dir, file), text)
    return parseConfig({target: '/srv/app', inventory: file, ...extra}, path.join(dir, 'hotctl.config.json'), {})
  }
  it('reads the inventory beside the config; group defaults to all', () => {
    expect(names(withInventory(INI, 'hosts.ini').hosts)).toHaveLength(6)
    expect(names(withInventory(YAML, 'hosts.yml', {group: 'web'}).hosts)).toEqual(['web1', 'web2'])
  })
  it('a missing inventory file is a usage error naming it', () => {
    const e = catchHotctl(() => parseConfig({target: '/srv/app', inventory: 'nope.ini'}, '/tmp/none/hotctl.json', {}))
    expect(e.exitCode).toBe(EXIT.usage)
    expect(e.message).toMatch(/inventory: \/tmp\/none\/nope.ini cannot be read/)
  })
  it('duplicate host names are a usage error', () => {
    const e = catchHotctl(() =>
      parseConfig({target: '/srv/app', hosts: ['a@h1', {name: 'h1', host: '10.0.0.2'}]}, '/c/hotctl.json', {}),
    )
    expect(e.exitCode).toBe(EXIT.usage)
    expect(e.message).toMatch(/host h1 is listed twice/)
  })
  it('${host} stays for forHost (never read from the environment); a local target refuses it', () => {
    const c = parseConfig(
      {target: 'deploy@web1:/srv/app', reload: {status: {url: 'http://${host}:8000/status'}}},
      '/c/hotctl.json',
      {},
    )
    expect(c.services[0]!.status!.url).toBe('http://${host}:8000/status')
    const e = catchHotctl(() =>
      parseConfig({target: '/srv/app', reload: {status: {url: 'http://${host}:8000/status'}}}, '/c/hotctl.json', {}),
    )
    expect(e.message).toMatch(/only known for remote targets/)
  })
})

const H = (name: string, address = name): HostSpec => ({name, address, vars: {}})

describe('--limit', () => {
  const hosts = ['web1', 'web2', 'web3', 'db1'].map((n) => H(n, `10.0.0.${n.length}`))
  it('names, globs and comma lists; ! leaves out', () => {
    expect(names(limitHosts(hosts, 'web1,db1'))).toEqual(['web1', 'db1'])
    expect(names(limitHosts(hosts, 'web*'))).toEqual(['web1', 'web2', 'web3'])
    expect(names(limitHosts(hosts, 'web*,!web2'))).toEqual(['web1', 'web3'])
    expect(names(limitHosts(hosts, '!db1'))).toEqual(['web1', 'web2', 'web3'])
  })
  it('a pattern matching nothing is a usage error naming it', () => {
    const e = catchHotctl(() => limitHosts(hosts, 'web1,wbe2'))
    expect(e.exitCode).toBe(EXIT.usage)
    expect(e.message).toBe('--limit: wbe2 matches no host')
    expect(e.hint).toMatch(/web1, web2, web3, db1/)
  })
})

describe('waves', () => {
  const six = ['a', 'b', 'c', 'd', 'e', 'f']
  it("[1, '25%', '100%']: a canary, then up to a quarter (cumulative), then the rest", () => {
    expect(planWaves(six, [1, '25%', '100%'])).toEqual([['a'], ['b'], ['c', 'd', 'e', 'f']])
    expect(planWaves([...six, ...six, ...six, 'x', 'y'], [1, '25%', '100%']).map((w) => w.length)).toEqual([1, 4, 15])
  })
  it('the default is one wave; empty waves are dropped; hosts past the last entry form a last wave', () => {
    expect(planWaves(six, ['100%'])).toEqual([six])
    expect(planWaves(['a', 'b'], [1, '25%', '100%'])).toEqual([['a'], ['b']])
    expect(planWaves(six, [2])).toEqual([
      ['a', 'b'],
      ['c', 'd', 'e', 'f'],
    ])
  })
})

describe('forHost', () => {
  const base = parseConfig(
    {
      target: '/srv/app',
      hosts: [{name: 'web1', host: '10.0.0.5', vars: {port: '8001'}}, '[fe80::1]'],
      reload: {
        trigger: {url: 'http://${host}:${host.vars.port}/reload'},
        status: {url: 'http://${host.name}.internal:8000/status'},
      },
      smoke: [{name: 'home', url: 'http://${host}/'}],
    },
    '/c/hotctl.json',
    {},
  )
  it('fills ${host}, ${host.name} and ${host.vars.X} in every HTTP URL', () => {
    const c = forHost(base, base.hosts[0]!)
    expect(c.host?.name).toBe('web1')
    const s = c.services[0]!
    expect(s.trigger && 'url' in s.trigger && s.trigger.url).toBe('http://10.0.0.5:8001/reload')
    expect(s.status!.url).toBe('http://web1.internal:8000/status')
    expect(c.smoke[0]).toMatchObject({url: 'http://10.0.0.5/'})
  })
  it('brackets an IPv6 address; a var the host lacks is a usage error naming host and var', () => {
    const c = forHost({...base, services: []}, base.hosts[1]!)
    expect(c.smoke[0]).toMatchObject({url: 'http://[fe80::1]/'})
    const e = catchHotctl(() => forHost(base, base.hosts[1]!))
    expect(e.message).toMatch(/\$\{host.vars.port\} is not set for host fe80::1/)
  })
})
