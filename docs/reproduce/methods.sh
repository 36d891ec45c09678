# The comparison's methods, sourced by comparison.sh and method-throughput.sh so both train each method alike.
# A method is an optimizer name, then optionally a --projection variant after a dash and flags after an @, comma
# separated: grass-topnorm, grass-norm+norepl, grass@scale=0.25 (--scale 0.25), frugal-blocks@density=0.5,scale=2.
optimizer_of() { local m=${1%%@*}; echo "${m%%-*}"; }
# Each method's default peak lr: ProjectedOptions.HyperParametersOf's, which a test (ReproduceScriptTests) holds this to.
default_lr() { case $(optimizer_of "$1") in adamw) echo 3e-3;; frugal) echo 1e-3;; lora) echo 2.5e-3;; lsp) echo 1e-4;; *) echo 1e-2;; esac; }
# The lr of a sweep cell: the default times a factor, in 3 significant digits (the run folders are named by it).
swept_lr() { awk -v a="$(default_lr "$1")" -v f="$2" 'BEGIN { printf "%.3g", a * f }'; }
# Rank 64 = hidden/4 (the GaLore paper's 60M ratio, 128 of 512) for every rank-based method; FRUGAL keeps ρ = 0.25.
method_flags() {
  local base=${1%%@*} flag
  echo --optimizer "$(optimizer_of "$1")"
  case $(optimizer_of "$1") in adamw|frugal) ;; *) echo --rank 64;; esac
  case $base in *-*) echo --projection "${base#*-}";; esac
  case $1 in *@*) for flag in $(echo "${1#*@}" | tr ',' ' '); do echo "--${flag%%=*}" "${flag#*=}"; done;; esac
}
