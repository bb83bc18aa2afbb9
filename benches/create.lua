-- The create request of benches/http.sh and benches/http_create.sh: a new
-- invoice per request, numbered uniquely within and across runs.
local counter = 0
math.randomseed(os.time())
local id = string.format("%x%x", os.time() % 65536, math.random(0, 1048575))
request = function()
  counter = counter + 1
  local body = string.format('{"customer_id": 1, "number": "W%s-%d", "status": "draft", "amount_cents": 1250, "issued_on": "2024-05-01", "notes": "load"}', id, counter)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = wrk.headers["Authorization"]}, body)
end
local shown = 0
response = function(status, headers, body)
  if status >= 300 and shown < 3 then
    io.stderr:write(string.format("unexpected %d: %s\n", status, body))
    shown = shown + 1
  end
end
