#!/usr/bin/env bash
# test_rcu_churn.sh AUTHD AUTHCTL AUTHDB AUTHGEN - the RCU-published records
# the dataplane reads are republished as fast as the control socket takes
# requests, during load, in the sanitized build.
#
# authd (one lcore, --clock fixed) on net_af_packet in a namespace, its
# users and merchants imported from CSV (authdb import). authgen plays the
# gateway over af_packet with --check-model: every answer is compared
# field by field with the decision core run on the same snapshot (ledger
# seqs only as zero or not: the settings changes take seqs too). Meanwhile
# a client of the control socket (Python, one request per connection, no
# authctl process per request) loops for the whole run over:
#   - policy set low-avail=<its value>: the policy record replaced
#     (rcu_assign_pointer, the old one freed by call_rcu);
#   - merchant set M for the merchants the load pays: each replaced in
#     the merchant hash (cds_lfht), unchanged;
#   - user set U --alert default for the load's users: an extension
#     record (cds_lfht) created, then replaced, with default values;
#   - merchant block / unblock of merchants the load never pays: real
#     changes the lcores must look up and skip;
#   - keys rotate of a second gateway: the whole keyring replaced (every
#     datagram's lookup goes through it).
# Identical values are the point: the answers must stay exactly what the
# model says (no mismatch, nothing lost), while old records are freed under
# the lcore's feet; ASan reports any use after free (authd would abort and
# exit non-zero; its log is searched too). Printed: republishes by kind and
# per second, datagrams checked.
# Needs root (ip netns): exit 77 (skipped) without.
set -u

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lib_args "AUTHD AUTHCTL AUTHDB AUTHGEN" "$@"
SECONDS_LOAD=${RCU_CHURN_SECONDS:-8}
lib_need_root
lib_init rcu
CHURN=

T0=1764057600
KEY=$(lib_random_key)
KEY2=$(lib_random_key)

# 2000 users, 50 merchants the load pays (1..50), 10 it never pays.
python3 - "$TMP" <<'PY'
import random, sys
d = sys.argv[1]
r = random.Random(11)
with open(d + "/users.csv", "w") as f:
    f.write("user_id,limit_yuan,tier,region\n")
    for u in range(1, 2001):
        f.write("%d,%d,%d,%d\n" % (u, r.choice([500, 2000, 8000, 30000]),
                                   r.randrange(8), r.randrange(1, 40)))
with open(d + "/merchants.csv", "w") as f:
    f.write("merchant_id,mcc,region,blocked,subsidy,risk\n")
    for m in range(1, 51):
        f.write("%d,%d,%d,0,%s,%d\n" % (m, r.choice([5411, 5732, 5812]),
                                        r.randrange(0, 40),
                                        r.choice(["", "3", "3|6|12"]),
                                        r.randrange(0, 600)))
PY
"$AUTHDB" import --users "$TMP/users.csv" --merchants "$TMP/merchants.csv" \
	--out "$TMP/base.snap" >/dev/null || fail "authdb import"
(umask 077 && printf '[gateway 1]\nkey.1 = %s\n[gateway 2]\nkey.1 = %s\n' "$KEY" "$KEY2" >"$TMP/keys.ini")
netns_up || fail "cannot create the namespaces"
authd_start --keys "$TMP/keys.ini" --snapshot "$TMP/base.snap" --clock "fixed:$T0" \
	|| fail "authd did not start"
LOW=$(authctl --json policy show | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["policy"]["low-avail"] if "policy" in d else d["low-avail"])')

cat >"$TMP/churn.py" <<'PY'
import json, random, socket, sys, time
sock, seconds, low, out = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
r = random.Random(5)
n = {}
def req(cmd, args, opts=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall((json.dumps({"v": 1, "cmd": cmd, "args": args,
                           "opts": opts or {}}) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"):
        c = s.recv(65536)
        if not c:
            break
        buf += c
    s.close()
    a = json.loads(buf)
    if not a.get("ok"):
        sys.exit("churn: %s %s: %s" % (cmd, args, a.get("error")))
    n[cmd] = n.get(cmd, 0) + 1
t0 = time.monotonic()
i = 0
while time.monotonic() - t0 < seconds:
    req("policy set", ["low-avail=" + low])
    req("merchant set", [str(r.randrange(1, 51))])
    req("user set", [str(r.randrange(1, 2001))], {"alert": "default"})
    m = str(r.randrange(1001, 1011))
    req("merchant block", [m])
    req("merchant unblock", [m])
    if i % 20 == 0:
        req("keys rotate", ["2"])
    i += 1
el = time.monotonic() - t0
json.dump({"by_cmd": n, "seconds": el, "total": sum(n.values())}, open(out, "w"))
PY

in_client true # the namespaces exist
lib_bg CHURN python3 "$TMP/churn.py" "$AUTHD_SOCK" "$((SECONDS_LOAD + 2))" "$LOW" "$TMP/churn.json"
hd_gen --keys "$TMP/keys.ini" --gateway 1 --ids-from "$TMP/base.snap" \
	--check-model "$TMP/base.snap" --clock-fixed "$T0" --seq loose --records 1-16 \
	--window 4 --duration "$SECONDS_LOAD" --timeout 3000 --json "$TMP/gen.json" \
	>"$TMP/gen.txt" 2>&1
GEN_RC=$?
lib_wait "$CHURN" || fail "the churn client failed"
CHURN=
[ -s "$TMP/gen.json" ] || { cat "$TMP/gen.txt"; fail "authgen wrote no JSON"; }
python3 - "$TMP/gen.json" "$TMP/churn.json" "$GEN_RC" <<'PY' || { cat "$TMP/gen.txt"; fail "answers under churn"; }
import json, sys
g = json.load(open(sys.argv[1]))["results"]
c = json.load(open(sys.argv[2]))
rc = int(sys.argv[3])
print("    churn: %d republishes in %.1f s (%d/s): %s"
      % (c["total"], c["seconds"], c["total"] / c["seconds"],
         ", ".join("%s %d" % kv for kv in sorted(c["by_cmd"].items()))))
print("    load: %d datagrams, %d records checked against the model, %d mismatches, %d lost"
      % (g["dgrams_answered"], g["model_checked"], g["model_mismatches"], g["dgrams_lost"]))
if rc or g["model_mismatches"] or g["dgrams_lost"] or not g["model_checked"]:
    sys.exit("FAIL: authgen exit %d" % rc)
PY
ok "every answer equal to the model's while policy, merchants, user extensions and the keyring were republished"
authd_stop_ok
grep -q "Sanitizer" "$AUTHD_LOG" && fail "a sanitizer reported: $(grep -m1 -A5 Sanitizer "$AUTHD_LOG")"
ok "authd stopped cleanly, no sanitizer report"
echo "PASS: test_rcu_churn"
