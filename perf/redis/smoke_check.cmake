# smoke_check.cmake - ctest redis_peer_smoke: run scripts/redis-peer.sh in
# smoke mode (10,000 users, 1 s per pipeline depth, 2% retried request ids)
# and check the JSON it writes: every run answered correctly, the holds in
# Redis add up to the approvals, every depth ran and measured something.
#
#   cmake -DREPO=<source dir> -DBUILD=<build dir> -DOUT=<json file>
#         -P perf/redis/smoke_check.cmake
foreach(v REPO BUILD OUT)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "smoke_check: give -D${v}=...")
  endif()
endforeach()

file(REMOVE ${OUT})
execute_process(
  COMMAND ${REPO}/scripts/redis-peer.sh --smoke --retry-pct 2
          --build ${BUILD} --json ${OUT}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "scripts/redis-peer.sh --smoke failed (exit ${rc})")
endif()
if(NOT EXISTS ${OUT})
  message(FATAL_ERROR "scripts/redis-peer.sh wrote no ${OUT}")
endif()
file(READ ${OUT} json)

function(expect what got want)
  if(NOT "${got}" STREQUAL "${want}")
    message(FATAL_ERROR "${what}: got '${got}', want '${want}'")
  endif()
endfunction()

function(expect_positive what got)
  if(NOT got MATCHES "^[0-9.]+$" OR got EQUAL 0)
    message(FATAL_ERROR "${what}: got '${got}', want a number > 0")
  endif()
endfunction()

string(JSON ok GET "${json}" ok)
expect("ok" "${ok}" "ON")
string(JSON users GET "${json}" load users)
expect("users loaded" "${users}" "10000")
string(JSON best GET "${json}" redis_lua_ops_per_s)
expect_positive("redis_lua_ops_per_s" "${best}")
string(JSON unpiped GET "${json}" redis_lua_unpipelined_ops_per_s)
expect_positive("redis_lua_unpipelined_ops_per_s" "${unpiped}")

string(JSON nruns LENGTH "${json}" runs)
expect("runs" "${nruns}" "3")
set(depths "")
math(EXPR last "${nruns} - 1")
foreach(i RANGE ${last})
  string(JSON run GET "${json}" runs ${i})
  string(JSON p GET "${run}" pipeline)
  list(APPEND depths ${p})
  foreach(field ok "check;done" "check;ok")
    string(JSON v GET "${run}" ${field})
    expect("run P=${p} ${field}" "${v}" "ON")
  endforeach()
  foreach(field bad_answers retry_mismatch unknown_user)
    string(JSON v GET "${run}" total ${field})
    expect("run P=${p} total.${field}" "${v}" "0")
  endforeach()
  foreach(field "measured;ops" "total;approved" "total;retries"
          "latency;p99_ns")
    string(JSON v GET "${run}" ${field})
    expect_positive("run P=${p} ${field}" "${v}")
  endforeach()
  string(JSON before GET "${run}" check holds_before_fen)
  string(JSON after GET "${run}" check holds_after_fen)
  string(JSON approved GET "${run}" total approved_fen)
  math(EXPR held "${after} - ${before}")
  expect("run P=${p} holds grown vs approved" "${held}" "${approved}")
  string(JSON added GET "${run}" check keys_added)
  string(JSON fresh GET "${run}" total fresh)
  expect("run P=${p} answers remembered" "${added}" "${fresh}")
endforeach()
expect("pipeline depths" "${depths}" "1;16;64")
message(STATUS "redis_peer_smoke: ok, best ${best} ops/s "
               "(unpipelined ${unpiped}); depths ${depths}")
