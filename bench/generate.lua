-- POST /api/v1/images with an API key (BENCH_API_KEY), the local provider, the product's generation budget:
-- most answers are 429 rate_limited. Run by scripts/bench.sh.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require("statuses")

wrk.method = "POST"
wrk.body = '{"prompt":"a lighthouse on a cliff at dusk","style":"none","aspect_ratio":"1:1"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY")
