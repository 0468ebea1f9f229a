import {describe, expect, it} from 'vitest'
import {applyColorPolicy, decideColor} from '../../src/ui/color.js'

describe('decideColor: the one colour decision', () => {
  const tty = {argv: [], isTTY: true}
  const pipe = {argv: [], isTTY: false}
  it.each([
    ['a terminal', {}, tty, 1],
    ['a 256-colour terminal', {TERM: 'xterm-256color'}, tty, 2],
    ['a truecolor terminal', {COLORTERM: 'truecolor'}, tty, 3],
    ['no terminal', {}, pipe, 0],
    ['no terminal, plain CI', {CI: '1'}, pipe, 0],
    ['no terminal, GitHub Actions (its log renders colour)', {CI: 'true', GITHUB_ACTIONS: 'true'}, pipe, 1],
    ['no terminal, GitLab', {CI: 'true', GITLAB_CI: 'true'}, pipe, 1],
    ['NO_COLOR on a terminal', {NO_COLOR: '1'}, tty, 0],
    ['an empty NO_COLOR is not set', {NO_COLOR: ''}, tty, 1],
    ['NO_COLOR beats FORCE_COLOR', {NO_COLOR: '1', FORCE_COLOR: '3'}, tty, 0],
    ['FORCE_COLOR=0 on a terminal', {FORCE_COLOR: '0'}, tty, 0],
    ['FORCE_COLOR=false', {FORCE_COLOR: 'false'}, tty, 0],
    ['FORCE_COLOR=1 without a terminal', {FORCE_COLOR: '1'}, pipe, 1],
    ['FORCE_COLOR=2', {FORCE_COLOR: '2'}, pipe, 2],
    ['FORCE_COLOR=3', {FORCE_COLOR: '3'}, pipe, 3],
    ['FORCE_COLOR (empty)', {FORCE_COLOR: ''}, pipe, 1],
    ['TERM=dumb', {TERM: 'dumb'}, tty, 0],
  ])('%s', (_what, env, io, level) => {
    expect(decideColor({env, ...io})).toBe(level)
  })

  it('--no-color beats FORCE_COLOR and a terminal', () => {
    expect(decideColor({env: {FORCE_COLOR: '3'}, argv: ['deploy', '--no-color'], isTTY: true})).toBe(0)
  })

  it('writes the decision so that chalk (FORCE_COLOR) and colorette (NO_COLOR, any FORCE_COLOR is "on") agree', () => {
    const off: Record<string, string | undefined> = {FORCE_COLOR: '0'}
    expect(applyColorPolicy(off, [], {stderr: true, stdout: true})).toBe(0)
    expect(off).toEqual({NO_COLOR: '1', FORCE_COLOR: '0'})
    const on: Record<string, string | undefined> = {NO_COLOR: '', FORCE_COLOR: '2'}
    expect(applyColorPolicy(on, [], {stderr: false, stdout: false})).toBe(2)
    expect(on).toEqual({FORCE_COLOR: '2'})
  })
})
