-- POST /api/v1/login with the bench user's credentials (BENCH_EMAIL, BENCH_PASSWORD): every request verifies
-- an argon2id hash and starts a session. Run by scripts/bench.sh.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require("statuses")

wrk.method = "POST"
wrk.body = string.format('{"email":"%s","password":"%s"}', os.getenv("BENCH_EMAIL"), os.getenv("BENCH_PASSWORD"))
wrk.headers["Content-Type"] = "application/json"
