/**
 * Shell completion for depctl (thesis 5.2: "automatic completion of the repository to deploy and completion of the
 * version to deploy"). The scripts complete commands and options themselves, and ask depctl for what only the
 * deployer knows: `depctl __complete services` and `depctl __complete tags [SERVICE]`, one word per line.
 */

export const SHELLS = ['bash', 'zsh'] as const;
export type Shell = (typeof SHELLS)[number];

export const isShell = (s: string): s is Shell => (SHELLS as readonly string[]).includes(s);

export interface CompletionSpec {
  readonly commands: ReadonlyArray<{
    readonly name: string;
    readonly summary: string;
    /** With their dashes: `--commit`. */
    readonly options: readonly string[];
    readonly takesService: boolean;
  }>;
  /** Options followed by a value, which is not the SERVICE argument. */
  readonly valueOptions: readonly string[];
}

export function completionScript(shell: Shell, spec: CompletionSpec): string {
  return shell === 'bash' ? bashScript(spec) : zshScript(spec);
}

/** Every word here is a command or option name: no quoting needed beyond what the names themselves (letters, -). */
function assertPlain(words: readonly string[]): void {
  for (const w of words) if (!/^[a-z-]+$/.test(w)) throw new Error(`not a plain completion word: ${w}`);
}

function bashScript(spec: CompletionSpec): string {
  const names = spec.commands.map((c) => c.name);
  assertPlain([...names, ...spec.commands.flatMap((c) => c.options), ...spec.valueOptions]);
  const cases = spec.commands
    .filter((c) => c.name !== 'help' && c.name !== 'completion')
    .map((c) => `    ${c.name}) options="${c.options.join(' ')}"; takes_service=${c.takesService ? 1 : 0} ;;`);
  return `# bash completion for depctl. Load it with:
#   source <(depctl completion bash)
# Service names and tags come from the deployer: depctl __complete services | tags [SERVICE].
_depctl() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local commands="${names.join(' ')}"
  COMPREPLY=()
  if (( COMP_CWORD == 1 )); then
    COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
    return 0
  fi
  local command=\${COMP_WORDS[1]} service="" i
  # The SERVICE is the first argument after the command that is neither an option nor an option's value.
  for (( i = 2; i < COMP_CWORD; i++ )); do
    case \${COMP_WORDS[i]} in
      ${spec.valueOptions.join('|')}) (( i += 1 )) ;;
      -*) ;;
      *) service=\${COMP_WORDS[i]}; break ;;
    esac
  done
  case $prev in
    --tag)
      COMPREPLY=($(compgen -W "$(depctl __complete tags \${service:+"$service"} 2>/dev/null)" -- "$cur"))
      return 0 ;;
    --to)
      COMPREPLY=($(compgen -W "previous" -- "$cur"))
      return 0 ;;
    ${spec.valueOptions.filter((o) => o !== '--tag' && o !== '--to').join('|')})
      return 0 ;;
  esac
  local options="" takes_service=0
  case $command in
${cases.join('\n')}
    help)
      (( COMP_CWORD == 2 )) && COMPREPLY=($(compgen -W "$commands" -- "$cur"))
      return 0 ;;
    completion)
      (( COMP_CWORD == 2 )) && COMPREPLY=($(compgen -W "${SHELLS.join(' ')}" -- "$cur"))
      return 0 ;;
    *) return 0 ;;
  esac
  if [[ $cur == -* || $takes_service == 0 || -n $service ]]; then
    COMPREPLY=($(compgen -W "$options" -- "$cur"))
    return 0
  fi
  COMPREPLY=($(compgen -W "$(depctl __complete services 2>/dev/null)" -- "$cur"))
  return 0
}
complete -F _depctl depctl
`;
}

function zshScript(spec: CompletionSpec): string {
  const names = spec.commands.map((c) => c.name);
  assertPlain([...names, ...spec.commands.flatMap((c) => c.options), ...spec.valueOptions]);
  // _describe takes NAME:DESCRIPTION; a colon in the description must be escaped, quotes are zsh single quotes.
  const described = spec.commands.map((c) => `    '${c.name}:${c.summary.replace(/:/g, '\\:').replace(/'/g, "'\\''")}'`);
  const cases = spec.commands
    .filter((c) => c.name !== 'help' && c.name !== 'completion')
    .map((c) => `    (${c.name}) options=(${c.options.join(' ')}); takes_service=${c.takesService ? 1 : 0} ;;`);
  return `#compdef depctl
# zsh completion for depctl. Load it, after compinit, with:
#   source <(depctl completion zsh)
# Service names and tags come from the deployer: depctl __complete services | tags [SERVICE].
_depctl() {
  local -a commands options found
  commands=(
${described.join('\n')}
  )
  if (( CURRENT == 2 )); then
    _describe -t commands 'depctl command' commands
    return
  fi
  local command=\${words[2]} service="" i
  # The SERVICE is the first argument after the command that is neither an option nor an option's value.
  for (( i = 3; i < CURRENT; i++ )); do
    case \${words[i]} in
      (${spec.valueOptions.join('|')}) (( i += 1 )) ;;
      (-*) ;;
      (*) service=\${words[i]}; break ;;
    esac
  done
  case \${words[CURRENT-1]} in
    (--tag)
      found=(\${(f)"$(depctl __complete tags \${service:+$service} 2>/dev/null)"})
      found=(\${found:#})
      compadd -a found
      return ;;
    (--to)
      compadd previous
      return ;;
    (${spec.valueOptions.filter((o) => o !== '--tag' && o !== '--to').join('|')})
      return ;;
  esac
  local takes_service=0
  case $command in
${cases.join('\n')}
    (help)
      (( CURRENT == 3 )) && _describe -t commands 'depctl command' commands
      return ;;
    (completion)
      (( CURRENT == 3 )) && compadd ${SHELLS.join(' ')}
      return ;;
    (*) return 1 ;;
  esac
  if [[ $PREFIX == -* || $takes_service == 0 || -n $service ]]; then
    compadd -a options
    return
  fi
  found=(\${(f)"$(depctl __complete services 2>/dev/null)"})
  found=(\${found:#})
  compadd -a found
}
if [[ \${funcstack[1]-} == _depctl ]]; then
  _depctl "$@"
else
  compdef _depctl depctl
fi
`;
}
