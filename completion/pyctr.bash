# bash completion for pyctr, pyctrd's command-line client.
# Verbs and flags are completed here; container and image names come from the
# daemon through `pyctr __complete containers|images` (with the same --address
# or --user as the command line being completed).

_pyctr_names() {
    # $1: containers or images; the rest: the bus options already typed
    local kind=$1
    shift
    pyctr "$@" __complete "$kind" 2>/dev/null
}

_pyctr() {
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion -n : || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    local verbs="import image images rmi create run ps inspect logs start stop restart
        kill pause unpause wait rm mount unmount umount export attach events"
    local bus=() verb="" i=1
    # global options come before the verb
    while [[ $i -lt $cword ]]; do
        case ${words[i]} in
            --address) bus+=(--address "${words[i + 1]}"); i=$((i + 2)); continue ;;
            --address=*) bus+=("${words[i]}") ;;
            --user) bus+=(--user) ;;
            -*) ;;
            *) verb=${words[i]}; break ;;
        esac
        i=$((i + 1))
    done

    if [[ -z $verb ]]; then
        if [[ $prev == --address ]]; then
            return
        fi
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "--address --user --help" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$verbs" -- "$cur")
        fi
        return
    fi

    local flags=""
    case $verb in
        create|run)
            flags="--name -e --env -w --workdir -u --user --hostname -l --label -v --volume
                -m --memory --cpus --pids-limit --network --read-only --security-opt
                --privileged --cap-add --cap-drop --ulimit --stop-signal --stop-timeout -t --tty -i --interactive --entrypoint"
            [[ $verb == run ]] && flags+=" -d --detach --rm --detach-keys"
            case $prev in
                --network) mapfile -t COMPREPLY < <(compgen -W "none host" -- "$cur"); return ;;
                --security-opt) mapfile -t COMPREPLY < <(compgen -W "no-new-privileges seccomp=unconfined" -- "$cur"); return ;;
                --cap-add|--cap-drop) mapfile -t COMPREPLY < <(compgen -W "ALL AUDIT_WRITE
                    CHOWN DAC_OVERRIDE FOWNER FSETID KILL MKNOD NET_ADMIN NET_BIND_SERVICE
                    NET_RAW SETFCAP SETGID SETPCAP SETUID SYS_ADMIN SYS_CHROOT SYS_PTRACE
                    SYS_TIME" -- "$cur"); return ;;
                --ulimit) compopt -o nospace 2>/dev/null
                    mapfile -t COMPREPLY < <(compgen -W "nofile= nproc= core= memlock= stack="
                    -- "$cur"); return ;;
                -v|--volume) compopt -o nospace 2>/dev/null
                    mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
                --stop-signal) mapfile -t COMPREPLY < <(compgen -W "SIGTERM SIGINT SIGQUIT
                    SIGHUP SIGKILL SIGUSR1 SIGUSR2" -- "$cur"); return ;;
                --name|-e|--env|-w|--workdir|-u|--user|--hostname|-l|--label|-m|--memory|\
                --cpus|--pids-limit|--stop-timeout|--entrypoint|--detach-keys) return ;;
            esac
            # the first word that is not a flag (or a flag's value) is the image;
            # after it comes the container's command, which is not ours to complete
            local j=$((i + 1)) seen_image=0
            while [[ $j -lt $cword ]]; do
                case ${words[j]} in
                    --name|-e|--env|-w|--workdir|-u|--user|--hostname|-l|--label|-v|--volume|\
                    -m|--memory|--cpus|--pids-limit|--network|--stop-signal|--stop-timeout|\
                    --entrypoint|--detach-keys|--security-opt|--cap-add|--cap-drop|--ulimit)
                        j=$((j + 1)) ;;
                    -*) ;;
                    *) seen_image=1; break ;;
                esac
                j=$((j + 1))
            done
            if [[ $seen_image == 1 ]]; then
                return
            fi
            if [[ $cur == -* ]]; then
                mapfile -t COMPREPLY < <(compgen -W "$flags" -- "$cur")
            else
                mapfile -t COMPREPLY < <(compgen -W "$(_pyctr_names images "${bus[@]}")" -- "$cur")
            fi
            return
            ;;
        import)
            if [[ $cur == -* ]]; then
                mapfile -t COMPREPLY < <(compgen -W "-q --quiet" -- "$cur")
            else
                mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            fi
            return
            ;;
        image)
            mapfile -t COMPREPLY < <(compgen -W "import ls list rm" -- "$cur")
            return
            ;;
        rmi) flags="-f --force" ;;
        images) flags="-q --quiet --no-trunc --format" ;;
        ps) flags="-a --all -q --quiet --no-trunc --format" ;;
        events) flags="--format" ;;
        logs) flags="-f --follow -t --timestamps -n --tail" ;;
        start) flags="-a --attach -i --interactive --detach-keys" ;;
        stop|restart) flags="-t --time" ;;
        kill) flags="-s --signal" ;;
        rm) flags="-f --force" ;;
        export) flags="-o --output" ;;
        attach) flags="--detach-keys --no-stdin" ;;
    esac

    case $prev in
        --format)
            if [[ $verb == events ]]; then
                mapfile -t COMPREPLY < <(compgen -W "text json" -- "$cur")
            else
                mapfile -t COMPREPLY < <(compgen -W "table json" -- "$cur")
            fi
            return ;;
        -o|--output) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
        -s|--signal) mapfile -t COMPREPLY < <(compgen -W "SIGKILL SIGTERM SIGINT SIGHUP
            SIGQUIT SIGUSR1 SIGUSR2 SIGSTOP SIGCONT" -- "$cur"); return ;;
        -t|--time|-n|--tail|--detach-keys) return ;;
    esac
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$flags --help" -- "$cur")
        return
    fi
    case $verb in
        images|ps|events) ;;
        rmi|inspect)
            local names
            names="$(_pyctr_names images "${bus[@]}")"
            [[ $verb == inspect ]] && names+=$'\n'"$(_pyctr_names containers "${bus[@]}")"
            mapfile -t COMPREPLY < <(compgen -W "$names" -- "$cur") ;;
        *) mapfile -t COMPREPLY < <(compgen -W "$(_pyctr_names containers "${bus[@]}")" \
               -- "$cur") ;;
    esac
}

complete -F _pyctr pyctr
