# visage.bash: bash completion for visage. Source it, or install it as
# /usr/share/bash-completion/completions/visage.
_visage() {
    local cur prev cmd i
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    cmd=
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        -C | --config) ((i++)) ;;
        -*) ;;
        *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    case $prev in
    -A | -B) [[ $cmd == init ]] || { COMPREPLY=($(compgen -d -- "$cur")); return; } ;;
    -C | -o | --output | --alignments | --models | --faces-a | --faces-b | -m | --model-dir)
        COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --model) COMPREPLY=($(compgen -W "original lightweight" -- "$cur")); return ;;
    --config | --filter | --nfilter | --ref) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --centering) COMPREPLY=($(compgen -W "face head legacy" -- "$cur")); return ;;
    --by) COMPREPLY=($(compgen -W "identity blur size yaw face:" -- "$cur")); return ;;
    --device) COMPREPLY=($(compgen -W "auto cpu cuda:0 cuda:1 cuda:2 cuda:3" -- "$cur")); return ;;
    --precision) COMPREPLY=($(compgen -W "auto fp32 tf32 bf16 fp16" -- "$cur")); return ;;
    --mask) COMPREPLY=($(compgen -W "extended components learned box" -- "$cur")); return ;;
    --color) COMPREPLY=($(compgen -W "avg rct hist none" -- "$cur")); return ;;
    esac
    case $cmd in
    '') COMPREPLY=($(compgen -W "init extract faces sort prune train model convert gpus config -C --config --help --version" -- "$cur")) ;;
    init)
        case $prev in
        -A | --source-a | -B | --source-b) COMPREPLY=($(compgen -f -- "$cur")) ;;
        *) COMPREPLY=($(compgen -W "--source-a --source-b --help" -- "$cur") $(compgen -d -- "$cur")) ;;
        esac ;;
    extract)
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--output --alignments --every --min-size --max-faces --threshold
                --size --centering --filter --nfilter --similarity --skip-existing
                --no-landmark-filter --min-blur --device --threads --models --quiet --overwrite --help" -- "$cur"))
        else
            COMPREPLY=($(compgen -f -- "$cur"))
        fi ;;
    faces) COMPREPLY=($(compgen -W "--ref --json --help" -- "$cur") $(compgen -d -- "$cur")) ;;
    sort) COMPREPLY=($(compgen -W "--by --dry-run --help" -- "$cur") $(compgen -d -- "$cur")) ;;
    prune) COMPREPLY=($(compgen -W "--alignments --force --help" -- "$cur") $(compgen -d -- "$cur")) ;;
    train)
        COMPREPLY=($(compgen -W "--faces-a --faces-b --model-dir --model --lowmem --learn-mask --batch
            --iterations --save-every --snapshot-every --keep-backups --shrink --seed --device
            --precision --threads --quiet --help" -- "$cur")) ;;
    convert)
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--model-dir --output --swap --alignments --mask --erode --blur
                --color --sharpen --device --threads --models --quiet --frames --crf --preset
                --lossless --smooth --filter --nfilter --similarity --preview --no-metadata --help" -- "$cur"))
        else
            COMPREPLY=($(compgen -f -- "$cur"))
        fi ;;
    gpus) COMPREPLY=($(compgen -W "--help" -- "$cur")) ;;
    model)
        if ((COMP_CWORD == i + 1)); then
            COMPREPLY=($(compgen -W "info --help" -- "$cur"))
        else
            COMPREPLY=($(compgen -f -- "$cur"))
        fi ;;
    config) COMPREPLY=($(compgen -W "--dump --defaults --check --help" -- "$cur")) ;;
    esac
}
complete -F _visage visage
