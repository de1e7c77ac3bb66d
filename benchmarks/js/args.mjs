// Command-line flags shared by the benchmark clients: --name value, --name=value, --flag.
export function parseArgs (argv) {
  const out = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) continue
    const eq = a.indexOf('=')
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1)
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out[a.slice(2)] = argv[++i]
    else out[a.slice(2)] = 'true'
  }
  return out
}
export function int (v, d) { return v === undefined ? d : parseInt(v, 10) }
export function num (v, d) { return v === undefined ? d : Number(v) }
