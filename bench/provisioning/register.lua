-- register.lua -- wrk -t 1: POST register-agent, round robin over the connections of $CREDS (each
-- may make 60 a minute). MODE=outside asks for a name outside the namespace (403: the service's
-- own path: credentials, limit, namespace); MODE=create for a new account each time (200: the
-- homeserver's registration included). done() writes "<expected> <others>" to $OUT.
local conns, n = {}, 0
-- Globals: done() reads them with thread:get.
ok, other = 0, 0
local thread_of
local mode = os.getenv("MODE")

function setup(thread)
  thread_of = thread
end

function init(args)
  for line in io.lines(os.getenv("CREDS")) do
    local id, secret, ns = line:match("(%S+) (%S+) (%S+)")
    if id then conns[#conns + 1] = {id, secret, ns} end
  end
end

function request()
  n = n + 1
  local c = conns[(n - 1) % #conns + 1]
  local user = mode == "create" and string.format("mindroom_a%d_%s", n, c[3]) or "mindroom_a_zzzzzzzz"
  local body = '{"homeserver":"' .. os.getenv("HS") .. '","username":"' .. user .. '","password":"pw-' .. n .. '"}'
  return wrk.format("POST", "/v1/local-mindroom/register-agent",
                    {["Content-Type"] = "application/json", ["X-Local-MindRoom-Client-Id"] = c[1],
                     ["X-Local-MindRoom-Client-Secret"] = c[2]}, body)
end

function response(status, headers, body)
  if status == (mode == "create" and 200 or 403) then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local f = io.open(os.getenv("OUT"), "w")
  f:write(thread_of:get("ok"), " ", thread_of:get("other"), "\n")
  f:close()
end
