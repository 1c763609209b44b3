-- wrk request: a small chat completion, streamed when STREAM=1. The key comes from the environment.
wrk.method = "POST"
local stream = os.getenv("STREAM") == "1"
local model = os.getenv("MODEL") or "bench-gpt"
wrk.body = '{"model":"' .. model .. '","stream":' .. (stream and "true" or "false") ..
  ',"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello, how are you today?"}]}'
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("KEY")
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end

-- Fail loudly if responses are not 200, so a broken setup cannot pass as fast.
local bad = 0
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("BENCH rps=%.0f p50_us=%d p99_us=%d non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    summary.errors.status + bad, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
