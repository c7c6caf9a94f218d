-- wrk script for the memory part of the bench: every request carries a
-- Proxy-Authorization credential no earlier request carried, so whatever the
-- filter remembers per credential would show as growth. wrk itself has no
-- request count, so each thread stops after BENCH_COUNT answers.
--
-- Request n (counted from BENCH_START) is, by n mod 4:
--   0  a valid user of the BENCH_USERS made by bench.py (u<i>:p<i>), so the
--      caches of successes keep filling and must evict;
--   1  a known user with a wrong password;
--   2, 3  an unknown user.

local start = tonumber(os.getenv("BENCH_START") or "0")
local count = tonumber(os.getenv("BENCH_COUNT") or "100000")
local users = tonumber(os.getenv("BENCH_USERS") or "1")

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- RFC 4648 section 4, written out with arithmetic so any Lua wrk links works.
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = alphabet:sub(c1 + 1, c1 + 1) .. alphabet:sub(c2 + 1, c2 + 1)
      .. (b and alphabet:sub(c3 + 1, c3 + 1) or "=")
      .. (c and alphabet:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

local sent = 0
local answered = 0

function request()
  local n = start + sent
  sent = sent + 1
  local kind = n % 4
  local credential
  if kind == 0 then
    local i = math.floor(n / 4) % users
    credential = "u" .. i .. ":p" .. i
  elseif kind == 1 then
    credential = "u" .. (math.floor(n / 4) % users) .. ":wrong" .. n
  else
    credential = "x" .. n .. ":p" .. n
  end
  return wrk.format("GET", "/", { ["Proxy-Authorization"] = "Basic " .. base64(credential) })
end

function response(status, headers, body)
  answered = answered + 1
  if answered >= count then
    wrk.thread:stop()
  end
end
