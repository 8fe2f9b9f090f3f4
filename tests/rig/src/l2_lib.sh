# Helpers for scenario scripts (sourced before /scenario.sh).
# vireo_result NAME pass|fail DETAIL...   report one result
vireo_result() {
  _n=$1; _s=$2; shift 2
  echo "VIREO-RESULT name=$_n status=$_s detail=$*"
}
# vireo_check NAME COMMAND...   run COMMAND, pass if it exits 0; its output goes into detail
vireo_check() {
  _n=$1; shift
  if _o=$("$@" 2>&1); then
    vireo_result "$_n" pass "$(echo "$_o" | tail -n 1)"
  else
    _rc=$?
    vireo_result "$_n" fail "rc=$_rc $(echo "$_o" | tail -n 3 | tr '\n' '|')"
    return 1
  fi
}
# vireo_wait_for PATH SECONDS   wait until PATH exists (devices appear asynchronously)
vireo_wait_for() {
  _i=0
  while [ ! -e "$1" ] && [ "$_i" -lt "$(( $2 * 10 ))" ]; do sleep 0.1; _i=$((_i + 1)); done
  [ -e "$1" ]
}
