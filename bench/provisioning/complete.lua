-- complete.lua -- wrk -t 1: POST pair/complete, each request with the next unused code of $CODES
-- and an X-Forwarded-For of its own (the per-address limit is not what is measured). The
-- answers' credentials go to $CREDS as they come ("client_id client_secret namespace" a line),
-- for the register-agent runs; done() writes "<200s> <others>" to $CREDS.count.
local codes, creds, n = {}, nil, 0
-- Globals: done() reads them with thread:get.
ok, other = 0, 0
local thread_of

function setup(thread)
  thread_of = thread
end

function init(args)
  for line in io.lines(os.getenv("CODES")) do codes[#codes + 1] = line end
  creds = io.open(os.getenv("CREDS"), "w")
end

function request()
  n = n + 1
  local ip = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  local body = '{"pair_code":"' .. (codes[n] or "ZZZZ-ZZZZ") ..
               '","client_name":"bench","client_pubkey_or_fingerprint":"sha256:00"}'
  return wrk.format("POST", "/v1/local-mindroom/pair/complete",
                    {["Content-Type"] = "application/json", ["X-Forwarded-For"] = ip}, body)
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
    -- Flushed at once: the thread's state is gone before done() runs.
    creds:write(body:match('"client_id":%s*"([^"]+)"'), " ", body:match('"client_secret":%s*"([^"]+)"'), " ",
                body:match('"namespace":%s*"([^"]+)"'), "\n")
    creds:flush()
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local f = io.open(os.getenv("CREDS") .. ".count", "w")
  f:write(thread_of:get("ok"), " ", thread_of:get("other"), "\n")
  f:close()
end
