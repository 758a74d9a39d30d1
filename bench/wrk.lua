-- wrk script for bench/run.sh.
-- BENCH_PATH: the request target; an absolute URL ("http://127.0.0.1:8080/1k") when
--             wrk's own URL is a proxy, so the request line is in absolute form.
-- BENCH_HOST: Host header (the origin's authority; wrk would send the proxy's).
-- BENCH_CLOSE=1: send "Connection: close" (a new connection per request).
-- Prints one machine-readable line: "WRK rps=.. p50_ms=.. p99_ms=.. errors=.. non2xx=.. bytes=.. requests=.."

wrk.method = "GET"
wrk.path = os.getenv("BENCH_PATH") or "/"
if os.getenv("BENCH_HOST") then
   wrk.headers["Host"] = os.getenv("BENCH_HOST")
end
-- BENCH_PROXY_AUTH: a Proxy-Authorization value the client sends itself (the relay floor in
--                   front of the authenticating squid)
local proxy_auth = os.getenv("BENCH_PROXY_AUTH")
if proxy_auth and proxy_auth ~= "" then
   wrk.headers["Proxy-Authorization"] = proxy_auth
end
if os.getenv("BENCH_CLOSE") == "1" then
   wrk.headers["Connection"] = "close"
end

function done(summary, latency, requests)
   local e = summary.errors
   local errors = e.connect + e.read + e.write + e.timeout
   local seconds = summary.duration / 1e6
   io.write(string.format("WRK rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d bytes=%d requests=%d\n",
      summary.requests / seconds,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      errors, e.status, summary.bytes, summary.requests))
end
