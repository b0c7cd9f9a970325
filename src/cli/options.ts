/** depctl's options: each command accepts some of them (`CommandSpec.options`), plus the common ones. */
export const OPTIONS = {
  commit: { type: 'string' },
  tag: { type: 'string' },
  to: { type: 'string' },
  'min-age': { type: 'string' },
  json: { type: 'boolean' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const;
export type OptionName = keyof typeof OPTIONS;
export type Values = { [K in OptionName]?: (typeof OPTIONS)[K]['type'] extends 'string' ? string : boolean };

/** The options of every command (`--version` only stands alone). */
export const COMMON_OPTIONS: readonly OptionName[] = ['json', 'timeout', 'help'];
/** Options that take a value, for the completion scripts to skip. */
export const VALUE_OPTIONS: readonly OptionName[] = (Object.keys(OPTIONS) as OptionName[]).filter(
  (o) => OPTIONS[o].type === 'string',
);

/** The options a command accepts, the common ones included; help and completion take only --help. */
export function optionsOf(command: { readonly options: readonly OptionName[]; readonly local?: true }): OptionName[] {
  return command.local ? [...command.options, 'help'] : [...command.options, ...COMMON_OPTIONS];
}
