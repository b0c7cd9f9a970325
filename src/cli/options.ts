import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';

/** depctl's options: each command accepts some of them (`CommandSpec.options`), plus the common ones. */
export const OPTIONS = {
  commit: { type: 'string' },
  tag: { type: 'string' },
  to: { type: 'string' },
  'min-age': { type: 'string' },
  wait: { type: 'string' },
  analysis: { type: 'boolean' },
  json: { type: 'boolean' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const;
export type OptionName = keyof typeof OPTIONS;
export type Values = { [K in OptionName]?: (typeof OPTIONS)[K]['type'] extends 'string' ? string : boolean };

/** Options whose value may be left out (`--wait` or `--wait=5m`); alone they mean `true`. */
const OPTIONAL_VALUE: ReadonlySet<string> = new Set<OptionName>(['wait']);

/** The options of every command (`--version` only stands alone). */
export const COMMON_OPTIONS: readonly OptionName[] = ['json', 'timeout', 'help'];
/** Options that take a value, for the completion scripts to skip (not those whose value is optional). */
export const VALUE_OPTIONS: readonly OptionName[] = (Object.keys(OPTIONS) as OptionName[]).filter(
  (o) => OPTIONS[o].type === 'string' && !OPTIONAL_VALUE.has(o),
);

/** The options a command accepts, the common ones included; help and completion take only --help. */
export function optionsOf(command: { readonly options: readonly OptionName[]; readonly local?: true }): OptionName[] {
  return command.local ? [...command.options, 'help'] : [...command.options, ...COMMON_OPTIONS];
}

export interface CommandLine {
  readonly values: Values;
  readonly positionals: readonly string[];
}

const isOption = (name: string): name is OptionName => Object.hasOwn(OPTIONS, name);

/**
 * Parses depctl's command line and says what is wrong in depctl's words: an unknown option with the nearest known
 * one, an option without its value, a value given to a switch. `optionsFor` names the options of the command the
 * positionals name, to suggest among those first.
 */
export function parseCommandLine(argv: readonly string[], optionsFor: (command: string) => readonly OptionName[] | undefined): CommandLine {
  const end = argv.indexOf('--');
  // `--wait` alone would take the next word (the SERVICE) as its value.
  const args = argv.map((a, i) => ((end === -1 || i < end) && OPTIONAL_VALUE.has(a.replace(/^--/, '')) && a.startsWith('--') ? `${a}=true` : a));
  const { values, positionals, tokens } = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: false, tokens: true });
  const command = positionals[0];
  const help = command === undefined ? '"depctl help"' : `"depctl help ${command}"`;
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const raw = argv[token.index] ?? token.rawName;
    if (!isOption(token.name)) {
      const known = (command === undefined ? undefined : optionsFor(command)) ?? (Object.keys(OPTIONS) as OptionName[]);
      // `-commit` is read as the short options -c -o -m...: name the word as typed.
      const typed = raw.startsWith('--') ? token.rawName : raw.split('=')[0] ?? raw;
      const near = nearest(typed.replace(/^-+/, ''), known);
      const hint = near === undefined ? '' : `; did you mean --${near}?`;
      throw new UsageError(`unknown option ${typed}${hint}\nsee ${help}`);
    }
    const spec = OPTIONS[token.name];
    if (spec.type === 'string') {
      if (token.value === undefined) throw new UsageError(`${token.rawName} needs a value, e.g. ${token.rawName} ${placeholder(token.name)}\nsee ${help}`);
      if (!token.inlineValue && token.value.startsWith('-')) {
        throw new UsageError(
          `${token.rawName} needs a value, not the option ${token.value} (write ${token.rawName}=${token.value} if it is the value)\nsee ${help}`,
        );
      }
    } else if (token.inlineValue === true) {
      throw new UsageError(`${token.rawName} takes no value (got ${raw})\nsee ${help}`);
    }
  }
  return { values: values as Values, positionals };
}

function placeholder(name: OptionName): string {
  return name === 'timeout' ? 'SECONDS' : name === 'min-age' ? 'DURATION' : name.toUpperCase();
}

/** The known option nearest to `typed`: a prefix of it, or at most two edits away (a typo); undefined if none is. */
export function nearest(typed: string, known: readonly string[]): string | undefined {
  if (typed === '') return undefined;
  const prefixed = known.filter((k) => k.startsWith(typed));
  if (prefixed.length === 1) return prefixed[0];
  let best: { name: string; distance: number } | undefined;
  for (const name of known) {
    const distance = editDistance(typed, name);
    if (distance <= Math.min(2, Math.floor(name.length / 2)) && (best === undefined || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours cost one. */
export function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number): number => rows[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i += 1) {
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, at(i - 2, j - 2) + 1);
      rows[i]![j] = d;
    }
  }
  return at(a.length, b.length);
}
