# bash completion for thothc(1).  Self-contained (no bash-completion helpers
# needed); installed as share/bash-completion/completions/thothc.
_thothc()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local cmd=${COMP_WORDS[1]}
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W "gen check fmt lint --help --version" -- "$cur"))
		return
	fi
	case $prev in
	-o) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	--lang) COMPREPLY=($(compgen -W "c" -- "$cur")); return ;;
	--c-prefix) return ;;
	--depfile) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	esac
	if [[ $cur == -* ]]; then
		case $cmd in
		gen) COMPREPLY=($(compgen -W "--lang -o --c-prefix --depfile" -- "$cur")); return ;;
		fmt) COMPREPLY=($(compgen -W "--check --stdout" -- "$cur")); return ;;
		esac
	fi
	# Schemas: *.tidl files and folders to descend into.
	COMPREPLY=($(compgen -f -X '!*.tidl' -- "$cur") $(compgen -d -- "$cur"))
}
complete -F _thothc thothc
