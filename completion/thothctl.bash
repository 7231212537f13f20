# bash completion for thothctl(1).  Self-contained (no bash-completion
# helpers needed); installed as share/bash-completion/completions/thothctl.
_thothctl()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local i cmd="" sub=""
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--runtime-dir) ((i++)) ;;
		-*) ;;
		*) if [ -z "$cmd" ]; then cmd=${COMP_WORDS[i]}; elif [ -z "$sub" ]; then sub=${COMP_WORDS[i]}; fi ;;
		esac
	done
	case $prev in
	--runtime-dir|--ctf)
		COMPREPLY=($(compgen -d -- "$cur")); return ;;
	--from)
		# sched --from TRACE.json is a file (directories only were offered);
		# codex read --from SEQ is a number
		[ "$cmd" = sched ] && COMPREPLY=($(compgen -f -- "$cur"))
		return ;;
	--export-list|--emit)
		COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--json)
		# After `trace`, --json names an output file; before, it is a flag.
		if [ "$cmd" = trace ]; then COMPREPLY=($(compgen -f -- "$cur")); return; fi ;;
	--categories)
		COMPREPLY=($(compgen -W "all ipc registry timer loop pm user lock" -- "$cur")); return ;;
	# a value of the user's: nothing to offer (the command's options were)
	--pid|--duration|--min-version|--top|--budget-ms|--to|--since|--until|--wait|--every|--rate|--qos-us|--deadline-us|--service|--dev)
		return ;;
	esac
	local global="--runtime-dir --json --help --version"
	case $cmd in
	"")
		# every command of `thothctl --help` (test_cli.sh checks): locks
		# and probe were missing
		COMPREPLY=($(compgen -W "status services resolve trace sched pm codex topology serve locks moderation probe $global" -- "$cur")) ;;
	status)
		COMPREPLY=($(compgen -W "--watch --json --runtime-dir" -- "$cur")) ;;
	services)
		COMPREPLY=($(compgen -W "--watch --json --runtime-dir" -- "$cur")) ;;
	resolve)
		COMPREPLY=($(compgen -W "--min-version --json --runtime-dir" -- "$cur")) ;;
	trace)
		if [ -z "$sub" ] && [[ $cur != -* ]]; then
			COMPREPLY=($(compgen -W "start stop dump" -- "$cur"))
		else
			case $sub in
			start) COMPREPLY=($(compgen -W "--categories --pid" -- "$cur")) ;;
			stop) COMPREPLY=() ;;
			dump) COMPREPLY=($(compgen -W "--json --ctf" -- "$cur")) ;;
			*) COMPREPLY=($(compgen -W "--duration --categories --pid --json --ctf --help" -- "$cur")) ;;
			esac
		fi ;;
	sched)
		COMPREPLY=($(compgen -W "--duration --from --json --runtime-dir" -- "$cur")) ;;
	codex)
		if [ -z "$sub" ] && [[ $cur != -* ]]; then
			COMPREPLY=($(compgen -W "stats create append read" -- "$cur"))
		else
			case $sub in
			create) COMPREPLY=($(compgen -W "--budget-ms" -- "$cur")) ;;
			append) COMPREPLY=($(compgen -W "--sync --deferred --budget-ms" -- "$cur")) ;;
			read) COMPREPLY=($(compgen -W "--from --to --since --until --json" -- "$cur")) ;;
			*) COMPREPLY=($(compgen -W "--json --help" -- "$cur")) ;;
			esac
		fi ;;
	locks)
		COMPREPLY=($(compgen -W "--pid --top --verbose --json --runtime-dir" -- "$cur")) ;;
	probe)
		if [ -z "$sub" ] && [[ $cur != -* ]]; then
			COMPREPLY=($(compgen -W "check attach list detach maps kernel run" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "--pid --service --wait --duration --every --keep --emit --help" -- "$cur") $(compgen -f -- "$cur"))
		fi ;;
	moderation)
		COMPREPLY=($(compgen -W "--dev --probe --policy --rate --json --help" -- "$cur")) ;;
	pm)
		if [ -z "$sub" ] && [[ $cur != -* ]]; then
			COMPREPLY=($(compgen -W "sim" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "--policy --device --cpu --qos-us --deadline-us --pid --json --export-list --gov-options --help" -- "$cur") $(compgen -f -- "$cur"))
		fi ;;
	serve)
		COMPREPLY=($(compgen -W "--pid --json --runtime-dir --help" -- "$cur")) ;;
	*)
		COMPREPLY=($(compgen -W "--json --runtime-dir --help" -- "$cur")) ;;
	esac
}
complete -F _thothctl thothctl
