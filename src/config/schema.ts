import {z} from 'zod'

// Each run parses its config once: zod's JIT (a parser per object schema generated with
// `new Function` at its first parse, which no code cache keeps) costs more than it saves there.
// The same checks and results, without eval.
z.config({jitless: true})

/** A command the user wrote: a shell string (npm-scripts style) or an argv array (no shell). */
/**
 * What `exclude` is when the config leaves it out. A config's own `exclude` replaces this list
 * (it does not extend it): every `hotctl init` template writes it out, so none drops it by accident.
 */
export const DEFAULT_EXCLUDE = ['.git', '__pycache__', '*.pyc', '.venv', 'node_modules'] as const

const shellCommand = z.string().min(1).describe('Shell command, run like an npm script')
const argvCommand = z.array(z.string()).min(1).describe('argv array, run without a shell')
/** One command: a shell string, or `{argv: [...]}`. */
export const commandSchema = z.union([shellCommand, z.object({argv: argvCommand}).strict()])
/** A check: one command or a list of commands run in order. */
export const checkSchema = z.union([commandSchema, z.array(commandSchema).min(1)])

// Validated here so a bad duration is a config error (exit 2), never a failure after the sync.
const duration = z
  .union([
    z
      .string()
      .regex(/^\s*\d+(?:\.\d+)?\s*(?:ms|s|m|h)?\s*$/, 'not a duration: use e.g. 500ms, 30s, 2m or a number of seconds'),
    z.number().nonnegative(),
  ])
  .describe('e.g. 500ms, 30s, 2m, or seconds')

/** A URL; `${host}`, `${host.name}` and `${host.vars.X}` (filled per host, see config/hosts.ts) may stand anywhere in it. */
const url = z
  .string()
  .refine((u) => URL.canParse(u.replace(/\$\{host(?:\.[^}]*)?\}/g, '1')), 'Invalid URL')
  .describe('URL; ${host}, ${host.name}, ${host.vars.X} are filled per host')

const httpRequest = z
  .object({
    url,
    method: z.string().default('GET'),
    headers: z.record(z.string(), z.string()).default({}),
    timeout: duration.default('10s'),
    retries: z.number().int().nonnegative().default(2),
  })
  .strict()

/** Where a command in reload/smoke runs for a remote target: on the host (default) or on the controller. */
const runsOn = z.enum(['host', 'local']).optional().describe('Remote targets: run on the host (default) or here')

const trigger = z.union([
  httpRequest.extend({method: z.string().default('POST')}).strict(),
  z.object({command: commandSchema, on: runsOn}).strict(),
])

const status = httpRequest
  .extend({
    version: z.string().default('version').describe('Dot path of the release id in the JSON reply'),
    state: z.string().default('state').describe('Dot path of the reload state in the JSON reply'),
    failStates: z
      .array(z.string())
      .default(['rejected'])
      .describe('States that mean the reload failed: the deploy fails at once'),
    restartStates: z
      .array(z.string())
      .default(['restart_required'])
      .describe('States that mean the changes need a restart: reload.restart runs, or exit 6 under --no-restart'),
    lastError: z
      .string()
      .default('last_error')
      .describe("Dot path of the service's last error, quoted when the reload fails"),
    settle: duration
      .default('2s')
      .describe('Consecutive answers with the release id must span this long (multi-worker servers)'),
    grace: duration
      .default('5s')
      .describe('HTTP 5xx or refused connections for longer than this after the reload fail it'),
    probes: z
      .number()
      .int()
      .min(1)
      .max(32)
      .default(4)
      .describe(
        'Status requests sent at once per poll once the release shows up: a server that hands new connections to one idle worker (uWSGI) shows its others only to requests that overlap',
      ),
    retrigger: duration
      .default('10s')
      .describe(
        'Every answer still reports another release this long after the trigger: fire it again (then after twice as long, …); 0: never',
      ),
  })
  .strict()

const service = z
  .object({
    name: z.string().default('service'),
    trigger: trigger.optional(),
    status: status.optional(),
  })
  .strict()

const reload = z
  .object({
    trigger: trigger.optional(),
    status: status.optional(),
    services: z.array(service.extend({name: z.string()})).optional(),
    timeout: duration.default('60s'),
    restart: z.object({command: commandSchema, on: runsOn}).strict().optional(),
    requireRestart: z.array(z.string()).default([]),
  })
  .strict()

const smokeHttp = z
  .object({
    name: z.string(),
    url,
    method: z.string().default('GET'),
    headers: z.record(z.string(), z.string()).default({}),
    json: z.unknown().optional(),
    body: z.string().optional(),
    expect: z
      .object({status: z.number().int().default(200), json: z.unknown().optional(), body: z.string().optional()})
      .strict()
      .default({status: 200}),
    timeout: duration.default('10s'),
    retries: z.number().int().nonnegative().default(2),
  })
  .strict()

const smokeCommand = z
  .object({
    name: z.string(),
    command: commandSchema,
    on: runsOn,
    timeout: duration.default('5m'),
    retries: z.number().int().nonnegative().default(0),
  })
  .strict()

/** The outcomes a webhook can be told about. */
export const NOTIFY_EVENTS = ['success', 'failure', 'restored', 'attention'] as const

/** A webhook told about deploy and rollback outcomes (header values are secrets: never printed). */
const notifyHook = z
  .object({
    url: z.url(),
    on: z
      .array(z.enum(NOTIFY_EVENTS))
      .min(1)
      .default([...NOTIFY_EVENTS]),
    headers: z.record(z.string(), z.string()).default({}),
    timeout: duration.default('10s'),
  })
  .strict()

/**
 * A release step (issue 9): a command that changes something besides the files (dependencies, a
 * database), with the backup and undo that make it part of the all-or-nothing deploy.
 */
const releaseStep = z
  .object({
    name: z.string().min(1),
    run: commandSchema.describe('What the step does, run in the target directory'),
    when: z
      .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
      .optional()
      .describe('Path patterns: the step runs only when a matching file changes (default: always)'),
    before: z.literal('sync').optional().describe('Run before the files are synced'),
    after: z.literal('sync').optional().describe('Run after the files are synced (the default)'),
    backup: commandSchema
      .optional()
      .describe('Saves what `run` changes into $HOTCTL_STEP_BACKUP_DIR; runs before anything is touched'),
    undo: commandSchema.optional().describe('Puts it back from $HOTCTL_STEP_BACKUP_DIR'),
    maintenance: z.boolean().default(false).describe('The service is in maintenance mode while this step runs'),
    timeout: duration.default('10m'),
  })
  .strict()

/** How a service without the agent enters and leaves maintenance mode (default: the marker file). */
const maintenanceCommands = z
  .object({on: commandSchema, off: commandSchema})
  .strict()
  .describe('Commands that switch maintenance mode, instead of writing .hotctl-maintenance.json')

/** A host of a fleet: `user@host[:port]`, or an object with per-host vars for `${host.vars.X}`. */
const hostEntry = z.union([
  z.string().min(1).describe('user@host[:port]'),
  z
    .object({
      name: z.string().optional(),
      host: z.string().min(1),
      user: z.string().optional(),
      port: z.number().int().min(1).max(65535).optional(),
      vars: z.record(z.string(), z.string()).default({}),
    })
    .strict(),
])

const wave = z.union([
  z.number().int().positive(),
  z.string().regex(/^\d+(?:\.\d+)?%$/, 'a wave is a count or a percentage like 25%'),
])

const ssh = z
  .object({
    config: z.string().optional().describe('ssh_config file passed to ssh -F (default: ~/.ssh/config)'),
    options: z.array(z.string()).default([]).describe('Extra ssh -o options, e.g. "IdentityFile=~/.ssh/deploy"'),
    connectTimeout: duration.default('10s'),
    serverAliveInterval: duration.default('5s'),
    timeout: duration.default('60s').describe('rsync --timeout and the bound on every remote command'),
  })
  .strict()

export const configSchema = z
  .object({
    $schema: z.string().optional(),
    source: z.string().optional().describe("Tree to deploy; default: the config file's directory"),
    target: z.string().min(1).describe('Live directory of the running service'),
    stateDir: z.string().optional().describe('Default: .<target name>.hotctl beside the target'),
    exclude: z.array(z.string()).default([...DEFAULT_EXCLUDE]),
    protect: z.array(z.string()).default([]),
    keep: z.number().int().min(1).default(10),
    checks: z.record(z.string(), checkSchema).default({}),
    // A single service (trigger/status), or a list of services serving one tree: each is triggered and must report the release.
    reload: z.union([reload, z.array(service.extend({name: z.string()}))]).optional(),
    smoke: z.array(z.union([smokeHttp, smokeCommand])).default([]),
    notify: z.array(notifyHook).default([]).describe('Webhooks told the outcome of each deploy and rollback'),
    steps: z.array(releaseStep).default([]),
    maintenance: maintenanceCommands.optional(),
    hosts: z.array(hostEntry).min(1).optional().describe('Fleet: hosts that each hold `target` (a path)'),
    inventory: z.string().optional().describe('Fleet: an Ansible inventory file (INI or YAML)'),
    group: z.string().optional().describe('Fleet: the inventory group (default: all)'),
    waves: z.array(wave).min(1).default(['100%']),
    parallel: z.number().int().positive().default(10),
    pause: duration.default(0),
    onFailure: z.enum(['rollback-all', 'halt']).default('rollback-all'),
    ssh: ssh.default({
      options: [],
      connectTimeout: '10s',
      serverAliveInterval: '5s',
      timeout: '60s',
    }),
  })
  .strict()

/** What users write (defaults optional). */
export type HotctlConfig = z.input<typeof configSchema>
export type ParsedConfig = z.output<typeof configSchema>
export type Command = z.output<typeof commandSchema>
export type CheckSpec = z.output<typeof checkSchema>
export type HttpRequestSpec = z.output<typeof httpRequest>
export type TriggerSpec = z.output<typeof trigger>
export type StatusSpec = z.output<typeof status>
export type SmokeSpec = z.output<typeof smokeHttp> | z.output<typeof smokeCommand>
export type SmokeHttpSpec = z.output<typeof smokeHttp>
export type HostEntry = z.output<typeof hostEntry>
export type RunsOn = z.output<typeof runsOn>
export type NotifySpec = z.output<typeof notifyHook>
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number]
export type ReleaseStepSpec = z.output<typeof releaseStep>
export type MaintenanceCommands = z.output<typeof maintenanceCommands>
