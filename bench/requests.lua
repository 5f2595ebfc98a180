-- wrk script of bench/run: every request is taken from a file of lines
--   METHOD PATH TOKEN        (TOKEN "-" means no Authorization header)
-- and pre-formatted once per thread, so the per-request cost in wrk is the
-- same for every scenario (including /healthz).
--
-- wrk -s requests.lua URL -- FILE MODE THREADS
--   MODE random:     each request picks a random line.
--   MODE sequential: thread t sends lines t, t+THREADS, t+2*THREADS, ...
--                    each exactly once (untrust: every request a fresh device);
--                    once its share is used up it sends GET /bench-pool-exhausted,
--                    which answers 404 and so shows up as an error.
-- done() prints one line: BENCH_RESULT {json}.

local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
end

local requests = {}
local n = 0
local i = 0
local mode = "random"
local exhausted

function init(args)
   local file, nthreads = args[1], tonumber(args[3] or "1")
   mode = args[2] or "random"
   local me = tid or 0
   local line_no = 0
   for line in io.lines(file) do
      local method, path, token = line:match("^(%S+)%s+(%S+)%s+(%S+)$")
      if method then
         if mode ~= "sequential" or line_no % nthreads == me then
            local headers = {}
            if token ~= "-" then headers["Authorization"] = "Bearer " .. token end
            local body = nil
            if method ~= "GET" then body = "" end
            n = n + 1
            requests[n] = wrk.format(method, path, headers, body)
         end
         line_no = line_no + 1
      end
   end
   if n == 0 then
      error("no requests for thread " .. me .. " in " .. file)
   end
   exhausted = wrk.format("GET", "/bench-pool-exhausted", {}, nil)
   math.randomseed(os.time() * 100 + me)
end

function request()
   if mode == "sequential" then
      i = i + 1
      if i > n then return exhausted end
      return requests[i]
   end
   return requests[math.random(n)]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, ' ..
      '"err_connect": %d, "err_read": %d, "err_write": %d, "err_status": %d, "err_timeout": %d}\n',
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
      e.connect, e.read, e.write, e.status, e.timeout))
end
