-- wrk request for the sink-lag benchmark: a small chat completion, paced by DELAY_MS per connection.
wrk.method = "POST"
wrk.body = '{"model":"mock-gpt-4o-mini","messages":[{"role":"user","content":"Hello, how are you today?"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("KEY") or "")
local pause = tonumber(os.getenv("DELAY_MS") or "10")
function delay() return pause end
done = function(summary, latency, requests)
  io.write(string.format("BENCH rps=%.0f non2xx=%d\n", summary.requests / (summary.duration / 1e6),
    summary.errors.status))
end
