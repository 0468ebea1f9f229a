// Build step: writes the JSON schema editors use for hotctl config files.
import fs from 'node:fs'
import {fileURLToPath} from 'node:url'
import {z} from 'zod'
import {configSchema} from './schema.js'

const out = fileURLToPath(new URL('../../templates/hotctl.schema.json', import.meta.url))
const schema = z.toJSONSchema(configSchema, {io: 'input', unrepresentable: 'any'})
fs.writeFileSync(out, JSON.stringify({...schema, title: 'hotctl configuration'}, null, 2) + '\n')
