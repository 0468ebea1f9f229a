/**
 * A dependency step: `pip install --no-index --find-links <local wheels>` into a real venv, no
 * network. Its backup is a copy of the venv; when the release fails its smoke the venv is put back
 * (the old version of the package, `pip freeze` as before) together with the files: exit 3.
 */
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {makeWorkspace, removeWorkspaces, requireBuild, runCli, writeFiles} from './helpers.js'
import {py, why} from './steps-support.js'

/** A pure-Python wheel of `tinydep` version `v`, zipped by hand (no build backend, no network). */
function buildWheel(dir: string, v: string): void {
  py(
    `import base64, hashlib, sys, zipfile
out, v = sys.argv[1], sys.argv[2]
info = "tinydep-%s.dist-info" % v
files = {
    "tinydep/__init__.py": "VERSION = %r\\n" % v,
    info + "/METADATA": "Metadata-Version: 2.1\\nName: tinydep\\nVersion: %s\\n" % v,
    info + "/WHEEL": "Wheel-Version: 1.0\\nGenerator: hotctl-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}
def digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
record = "".join("%s,%s,%d\\n" % (n, digest(c.encode()), len(c.encode())) for n, c in files.items())
files[info + "/RECORD"] = record + info + "/RECORD,,\\n"
with zipfile.ZipFile("%s/tinydep-%s-py3-none-any.whl" % (out, v), "w") as z:
    for name, content in files.items():
        z.writestr(name, content)`,
    [dir, v],
  )
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, {encoding: 'utf8', env: {...process.env, PIP_NO_INDEX: '1'}})
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`)
  return r.stdout
}

const STEP = {
  name: 'deps',
  when: 'requirements.txt',
  backup: 'cp -a "$VENV" "$HOTCTL_STEP_BACKUP_DIR/venv"',
  run: '"$VENV/bin/pip" install --quiet --no-index --find-links "$WHEELS" -r requirements.txt',
  undo: 'rsync -a --delete "$HOTCTL_STEP_BACKUP_DIR/venv/" "$VENV/"',
  timeout: '5m',
}

beforeAll(requireBuild)
afterAll(removeWorkspaces)

describe('a dependency step (pip, local wheels, a venv)', {timeout: 240_000}, () => {
  it('a failing smoke puts the venv back with the files: exit 3, pip freeze as before', async () => {
    const ws = makeWorkspace()
    const wheels = path.join(ws.dir, 'wheels')
    const venv = path.join(ws.dir, 'venv')
    fs.mkdirSync(wheels)
    buildWheel(wheels, '1.0')
    buildWheel(wheels, '2.0')
    run('python3', ['-m', 'venv', venv])
    const pip = path.join(venv, 'bin', 'pip')
    run(pip, ['install', '--quiet', '--no-index', '--find-links', wheels, 'tinydep==1.0'])
    writeFiles(ws.live, {'requirements.txt': 'tinydep==1.0\n'})
    writeFiles(ws.src, {'requirements.txt': 'tinydep==2.0\n# the release that needs 2.0\n'})
    const freeze = () => run(pip, ['freeze'])
    const before = freeze()
    expect(before).toMatch(/^tinydep==1\.0$/m)
    ws.setVersion('v2', {calcBroken: true})
    // The installed version is the one requirements.txt pins (for the new release, and the restored one).
    const version = `"$VENV/bin/python" -c "import tinydep; assert tinydep.VERSION == open('requirements.txt').read().split('==')[1].split()[0]"`
    ws.writeConfig({
      target: '../live',
      protect: ['data/', '.env'],
      steps: [STEP],
      smoke: [
        {name: 'deps', command: version},
        {name: 'calc', command: `python3 -c "from app.handlers import calc; assert calc(2, 3) == 5"`},
      ],
    })
    const env = {VENV: venv, WHEELS: wheels}
    const r = await runCli(['deploy', '--json'], {cwd: ws.src, env, timeoutMs: 180_000})
    expect(r.exitCode, why(r)).toBe(3)
    // The new release had tinydep 2.0 installed (its deps smoke passed); calc failed.
    expect(r.json.proof.smoke.map((s: {name: string; ok: boolean}) => `${s.name} ${s.ok}`)).toEqual([
      'deps true',
      'calc false',
    ])
    expect(r.json.releaseSteps).toMatchObject({ran: ['deps'], undone: ['deps']})
    expect(freeze()).toBe(before)
    expect(run(path.join(venv, 'bin', 'python'), ['-c', 'import tinydep; print(tinydep.VERSION)']).trim()).toBe('1.0')
    expect(fs.readFileSync(path.join(ws.live, 'requirements.txt'), 'utf8')).toBe('tinydep==1.0\n')
  })
})
