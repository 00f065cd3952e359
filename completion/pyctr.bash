# bash completion for pyctr, pyctrd's command-line client.
# Verbs and flags are completed here; container and image names come from the
# daemon through `pyctr __complete containers|images`, run as the very command
# being completed (${COMP_WORDS[0]}: .venv/bin/pyctr works without pyctr on
# PATH) with the same --address or --user as the command line.

_pyctr_names() {
    # $1: containers or images; the rest: the bus options already typed
    local kind=$1 pyctr=${COMP_WORDS[0]}
    shift
    pyctr=${pyctr/#\~/$HOME}
    "$pyctr" "$@" __complete "$kind" 2>/dev/null
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
        kill pause unpause wait rm mount unmount umount export attach exec events info
        version system pull push save tag untag commit container healthcheck network port
        stats volume"
    local container_verbs="attach create exec export inspect kill logs ls list ps mount
        pause restart rm run start stop unmount umount unpause wait exists commit
        healthcheck port stats"
    local bus=() verb="" i=1
    # global options come before the verb
    while [[ $i -lt $cword ]]; do
        case ${words[i]} in
            --address) bus+=(--address "${words[i + 1]}"); i=$((i + 2)); continue ;;
            --address=*) bus+=("${words[i]}") ;;
            --user) bus+=(--user) ;;
            --varlink) i=$((i + 2)); continue ;;
            -*) ;;
            *) verb=${words[i]}; break ;;
        esac
        i=$((i + 1))
    done

    if [[ -z $verb ]]; then
        if [[ $prev == --address ]]; then
            return
        fi
        if [[ $prev == --varlink ]]; then
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return
        fi
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "--address --user --varlink --help --noout
                --log-level --version" -- "$cur")
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
                --privileged --cap-add --cap-drop --ulimit --stop-signal --stop-timeout -t --tty -i --interactive --entrypoint
                -p --publish --dns --dns-search --add-host --network-alias --restart
                --health-cmd --health-interval --health-timeout --health-retries
                --health-start-period --no-healthcheck --mount --log-driver --replace
                --cidfile --pull -q --quiet"
            [[ $verb == run ]] && flags+=" -d --detach --rm --detach-keys"
            case $prev in
                --network) mapfile -t COMPREPLY < <(compgen -W "bridge none host" -- "$cur"); return ;;
                --restart) mapfile -t COMPREPLY < <(compgen -W "no on-failure always
                    unless-stopped" -- "$cur"); return ;;
                --log-driver) mapfile -t COMPREPLY < <(compgen -W "k8s-file" -- "$cur"); return ;;
                --pull) mapfile -t COMPREPLY < <(compgen -W "missing always never" -- "$cur"); return ;;
                --mount) compopt -o nospace 2>/dev/null
                    mapfile -t COMPREPLY < <(compgen -W "type=bind," -- "$cur"); return ;;
                --cidfile) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
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
                --cpus|--pids-limit|--stop-timeout|--entrypoint|--detach-keys|-p|--publish|\
                --dns|--dns-search|--add-host|--network-alias|--health-*) return ;;
            esac
            # the first word that is not a flag (or a flag's value) is the image;
            # after it comes the container's command, which is not ours to complete
            local j=$((i + 1)) seen_image=0
            while [[ $j -lt $cword ]]; do
                case ${words[j]} in
                    --name|-e|--env|-w|--workdir|-u|--user|--hostname|-l|--label|-v|--volume|\
                    -m|--memory|--cpus|--pids-limit|--network|--stop-signal|--stop-timeout|\
                    --entrypoint|--detach-keys|--security-opt|--cap-add|--cap-drop|--ulimit|\
                    -p|--publish|--dns|--dns-search|--add-host|--network-alias|--restart|\
                    --health-cmd|--health-interval|--health-timeout|--health-retries|\
                    --health-start-period|--mount|--log-driver|--cidfile|--pull|--tls-verify|\
                    --creds)
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
            if [[ $((i + 1)) -eq $cword ]]; then
                mapfile -t COMPREPLY < <(compgen -W "import ls list rm inspect exists pull
                    push save tag untag" -- "$cur")
                return
            fi
            case ${words[i + 1]} in
                ls|list) verb=images ;;
                rm) verb=rmi ;;
                *) verb=${words[i + 1]} ;;
            esac
            ;;
        container)
            if [[ $((i + 1)) -eq $cword ]]; then
                mapfile -t COMPREPLY < <(compgen -W "$container_verbs" -- "$cur")
                return
            fi
            case ${words[i + 1]} in
                ls|list) verb=ps ;;
                *) verb=${words[i + 1]} ;;
            esac
            ;;
        system)
            mapfile -t COMPREPLY < <(compgen -W "info df" -- "$cur")
            return
            ;;
        volume)
            if [[ $((i + 1)) -eq $cword ]]; then
                mapfile -t COMPREPLY < <(compgen -W "create ls list inspect rm remove prune
                    exists" -- "$cur")
            fi
            return
            ;;
    esac
    case $verb in
        rmi) flags="-f --force -a --all -i --ignore" ;;
        images) flags="-q --quiet --no-trunc --format -f --filter -n --noheading -a --all
            --digests --sort" ;;
        ps) flags="-a --all -q --quiet --no-trunc --format -f --filter --noheading -n --last
            -l --latest --sort --external --sync" ;;
        events) flags="--format -f --filter --since --until --stream --no-trunc" ;;
        stats) flags="-a --all -l --latest --no-stream --no-reset --no-trunc -n --noheading
            --format -i --interval" ;;
        logs) flags="-f --follow -t --timestamps --tail --since --until -n --names
            -l --latest" ;;
        start) flags="-a --attach -i --interactive --detach-keys --all -l --latest
            -f --filter --sig-proxy" ;;
        stop) flags="-t --time -a --all -l --latest -i --ignore --cidfile" ;;
        restart) flags="-t --time -a --all -l --latest --running" ;;
        kill) flags="-s --signal -a --all -l --latest --cidfile" ;;
        pause|unpause) flags="-a --all -l --latest --cidfile" ;;
        wait) flags="--condition -i --interval --ignore -l --latest" ;;
        rm) flags="-f --force -a --all -l --latest -i --ignore --cidfile -t --time
            -v --volumes" ;;
        mount) flags="-a --all -l --latest --format --no-trunc" ;;
        unmount|umount) flags="-a --all -l --latest -f --force" ;;
        inspect) flags="-f --format -t --type -l --latest" ;;
        info|version) flags="-f --format" ;;
        export) flags="-o --output" ;;
        attach) flags="--detach-keys --no-stdin -l --latest --sig-proxy" ;;
        exec) flags="-i --interactive -t --tty -d --detach -e --env -u --user -w --workdir
            --detach-keys" ;;
    esac

    case $prev in
        --format|-f)
            if [[ $prev == --format || $verb == inspect || $verb == info ]]; then
                mapfile -t COMPREPLY < <(compgen -W "json table" -- "$cur")
                return
            fi
            [[ $verb == logs || $verb == rmi || $verb == rm || $verb == unmount ]] || return ;;
        --filter) compopt -o nospace 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -W "id= name= label= status= exited= ancestor=
                before= since= reference= dangling= container= event= type= image="
                -- "$cur"); return ;;
        --type)
            mapfile -t COMPREPLY < <(compgen -W "container image all" -- "$cur"); return ;;
        --condition) mapfile -t COMPREPLY < <(compgen -W "stopped exited running paused
            created" -- "$cur"); return ;;
        --since|--until|--cidfile|--sort|--last|--interval|--stream|--no-trunc) return ;;
        -o|--output) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
        -s|--signal) mapfile -t COMPREPLY < <(compgen -W "SIGKILL SIGTERM SIGINT SIGHUP
            SIGQUIT SIGUSR1 SIGUSR2 SIGSTOP SIGCONT" -- "$cur"); return ;;
        --time|--tail|--detach-keys|--interval) return ;;
        -t)
            if [[ $verb == inspect ]]; then
                mapfile -t COMPREPLY < <(compgen -W "container image all" -- "$cur")
                return
            fi
            [[ $verb == stop || $verb == restart || $verb == rm ]] && return ;;
    esac
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$flags --help" -- "$cur")
        return
    fi
    case $verb in
        images|ps|events|info|version|system|df) ;;
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
