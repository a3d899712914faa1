-- The fast mock OpenAI API: nginx + the Lua module (ngx_lua), one instance per nginx worker.
--
-- Responses are assembled once, at start, from mock_llm/contract.json (the same pieces WireMock's
-- mappings are rendered from), so every answer is a string already in memory: per request the mock
-- only reads and parses the JSON body, checks `messages`, waits as the pacing profile says and
-- writes. The profile is fixed at start (gateways strip unknown headers, so nothing is signalled
-- per request).
--
-- With a fault plan (mock_llm/faults.yaml, schema/faults.py) every attempt is drawn from
-- md5("<seed>:<request id>:<attempt>") (its first 32 bits) against the cumulative rates of the faults active at that
-- moment, the request id being the body's `user` field, and recorded in the shared dictionary
-- `aigw_requests`: what was answered, how the answer ended, and whether the client closed its side
-- first (and after how long). Without a plan none of this runs: the default path is unchanged.

local cjson = require "cjson.safe"
local counts = ngx.shared.aigw_counts  -- probe requests per model (lua_shared_dict in nginx.conf.j2)

local M = {}

local S                  -- settings: profile, contract path (decoded from the rendered config)
local completion         -- the non-streaming body
local completion_tokens  -- tokens in one answer (streaming: content chunks)
local completion_of      -- function(n): a valid completion whose content is the first n tokens (fault "truncated")
local role_event         -- first SSE event (role), sent together with the first token
local token_events = {}  -- one SSE event per content token
local final_event        -- finish_reason + usage
local done_event         -- data: [DONE]
local errors = {}        -- name -> {status, body}
local plan               -- the fault plan (nil: no faults, nothing counted)
local A                  -- ngx.shared.aigw_requests: "epoch", "seq", "lost", "a:<id>" (attempts), "r:<id>:<n>"

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then error("cannot read " .. path .. ": " .. tostring(err)) end
  local text = f:read("*a")
  f:close()
  return text
end

-- Plain substitution ($NAME -> value); gsub patterns would treat '%' in values specially.
local function subst(text, name, value)
  local from, to = text:find("$" .. name, 1, true)
  while from do
    text = text:sub(1, from - 1) .. value .. text:sub(to + 1)
    from, to = text:find("$" .. name, from + #value, true)
  end
  return text
end

local function with_usage(text, prompt_tokens, n)
  text = subst(text, "PROMPT_TOKENS", tostring(prompt_tokens))
  text = subst(text, "COMPLETION_TOKENS", tostring(n))
  return subst(text, "TOTAL_TOKENS", tostring(prompt_tokens + n))
end

-- Called once per nginx master (init_by_lua): everything below is shared, read-only, by workers.
function M.init(settings_json)
  S = assert(cjson.decode(settings_json), "mock settings are not valid JSON")
  local c = assert(cjson.decode(read_file(S.contract)), "the contract is not valid JSON")
  local tokens = c.stream.tokens
  local n = S.profile.output_tokens
  local content
  if n == nil or n == cjson.null then
    -- The contract's own answer: non-streaming and streaming texts as WireMock serves them.
    n = #tokens
    content = c.content
    completion = with_usage(subst(c.completion, "CONTENT", '"' .. content .. '"'), c.prompt_tokens,
                            c.content_tokens)
  else
    local parts = {}
    for i = 1, n do parts[i] = tokens[(i - 1) % #tokens + 1] end
    content = table.concat(parts)
    completion = with_usage(subst(c.completion, "CONTENT", '"' .. content .. '"'), c.prompt_tokens, n)
  end
  completion_tokens = n
  completion_of = function(k)
    local parts = {}
    for i = 1, k do parts[i] = tokens[(i - 1) % #tokens + 1] end
    return with_usage(subst(c.completion, "CONTENT", '"' .. table.concat(parts) .. '"'), c.prompt_tokens, k)
  end
  for i = 1, n do
    token_events[i] = subst(c.stream.token, "TOKEN", '"' .. tokens[(i - 1) % #tokens + 1] .. '"')
  end
  role_event = c.stream.role
  final_event = with_usage(c.stream.final, c.prompt_tokens, n)
  done_event = c.stream.done
  for name, e in pairs(c.errors) do errors[name] = e end
  plan = S.plan
  if plan then
    A = assert(ngx.shared.aigw_requests, "a fault plan needs lua_shared_dict aigw_requests")
    A:set("epoch", ngx.now())
  end
end

-- The same, with the settings in a file (on EKS: settings.json of the mock's ConfigMap).
function M.init_file(path)
  M.init(read_file(path))
end

function M.init_worker()
  math.randomseed(ngx.now() * 1000 + ngx.worker.pid())
end

-- A delay in seconds drawn as the profile says: fixed, or log-normal around it (median = nominal).
local function draw(ms)
  if ms <= 0 then return 0 end
  local sigma = S.profile.jitter_sigma or 0
  if sigma > 0 then
    local u1, u2 = math.random(), math.random()
    local z = math.sqrt(-2 * math.log(1 - u1)) * math.cos(2 * math.pi * u2)
    ms = ms * math.exp(sigma * z)
  end
  return ms / 1000
end

local function pause(ms)
  local s = draw(ms)
  if s > 0 then ngx.sleep(s) end
end

local function answer_error(name, retry_after_s)
  local e = errors[name]
  ngx.status = e.status
  ngx.header["Content-Type"] = "application/json"
  if retry_after_s then ngx.header["Retry-After"] = tostring(retry_after_s) end
  ngx.print(e.body)
  return ngx.exit(e.status)
end

local function request_body()
  ngx.req.read_body()
  local data = ngx.req.get_body_data()
  if data == nil then
    -- Bigger than client_body_buffer_size: nginx kept it in a temporary file.
    local path = ngx.req.get_body_file()
    if path then data = read_file(path) end
  end
  return data
end

-- ------------------------------------------------------------------ the fault plan's bookkeeping

-- The record of one attempt, kept in the shared dictionary as JSON. A full dictionary is counted
-- ("lost"), never silently evicted: the reader refuses a count with records missing.
local function note(rec, ending, status)
  ngx.update_time()
  rec.ending = ending
  if status then rec.status = status end
  rec.after_ms = math.floor((ngx.now() - rec.t0) * 1000 + 0.5)
  local ok = A:safe_set(rec.key, cjson.encode({
    id = rec.id, attempt = rec.attempt, answer = rec.answer, status = rec.status, t_s = rec.t_s,
    ending = ending, after_ms = rec.after_ms, stream = rec.stream,
  }))
  if not ok then A:incr("lost", 1, 0) end
end

-- Which answer this attempt gets: the plan's rule (schema/faults.py FaultPlan.choose).
local function draw_fault(rid, attempt, t)
  local u = tonumber(ngx.md5(plan.seed .. ":" .. rid .. ":" .. attempt):sub(1, 8), 16) / 4294967296
  local edge = 0
  for _, f in ipairs(plan.faults) do
    if f.from_s <= t and (f.to_s == nil or t < f.to_s) then
      edge = edge + f.rate
      if u < edge then return f end
    end
  end
  return nil
end

-- Counts the attempt, draws its fault and watches the client: returns the fault (or nil) and the record.
local function attempt_of(req)
  local rid = req.user
  if type(rid) ~= "string" then rid = "#" .. A:incr("seq", 1, 0) end
  local attempt = A:incr("a:" .. rid, 1, 0)
  ngx.update_time()
  local now = ngx.now()
  local t = now - A:get("epoch")
  local fault = draw_fault(rid, attempt, t)
  local rec = {key = "r:" .. rid .. ":" .. attempt, id = rid, attempt = attempt, t0 = now,
               t_s = math.floor(t * 1000 + 0.5) / 1000, answer = fault and fault.fault or "ok", status = 0,
               stream = req.stream == true}
  note(rec, "running")
  -- The client closing its side while the mock waits or writes (lua_check_client_abort on).
  ngx.on_abort(function()
    note(rec, "client_closed")
    return ngx.exit(499)
  end)
  return fault, rec
end

-- Writes and flushes; a client that has gone is recorded and ends the request.
local function send(rec, ...)
  local ok = ngx.print(...)
  if ok then ok = ngx.flush(true) end
  if not ok and rec then
    note(rec, "client_closed")
    return ngx.exit(499)
  end
end

local function finish(rec, status)
  if rec then note(rec, "complete", status) end
end

local function stream(fault, rec)
  local p = S.profile
  ngx.header["Content-Type"] = "text/event-stream"
  ngx.header["Cache-Control"] = "no-cache"
  local kind = fault and fault.fault
  local cut = (kind == "cut_stream" or kind == "truncated") and fault.after_chunks or nil
  local bad = kind == "malformed" and math.max(1, math.floor(completion_tokens / 2)) or nil
  if rec then rec.status = 200 end
  pause(p.ttft_ms)
  -- A cut stream ends with the connection closed (the client sees it fail); a truncated one ends cleanly.
  local function stop()
    if kind == "truncated" then
      finish(rec, 200)
      return ngx.exit(ngx.HTTP_OK)
    end
    note(rec, "closed_by_mock")
    return ngx.exit(ngx.ERROR)
  end
  if cut == 0 then
    send(rec, role_event)
    return stop()
  end
  -- Headers, the role event and the first token leave together at the time to first token.
  send(rec, role_event, bad == 1 and token_events[1]:sub(1, math.floor(#token_events[1] / 2)) .. "\n\n"
                          or token_events[1])
  for i = 2, completion_tokens do
    if cut and i > cut then return stop() end  -- no final chunk, no [DONE]
    pause(p.per_token_ms)
    local event = token_events[i]
    if i == bad then event = event:sub(1, math.floor(#event / 2)) .. "\n\n" end
    send(rec, event)
  end
  ngx.print(final_event, done_event)
  finish(rec, 200)
  return ngx.exit(ngx.HTTP_OK)
end

-- A fault that answers before (or instead of) the normal answer; returns true when it answered.
local function answer_fault(fault, rec)
  local kind = fault.fault
  if kind == "http_429" then
    finish(rec, 429)
    answer_error("rate_limited", fault.retry_after_s)
    return true
  elseif kind == "http_500" or kind == "http_503" then
    finish(rec, kind == "http_500" and 500 or 503)
    answer_error(kind == "http_500" and "server_error" or "unavailable")
    return true
  elseif kind == "reset" or kind == "down" then
    note(rec, "closed_by_mock")
    ngx.exit(444)  -- closed without an answer
    return true
  elseif kind == "slow_first_byte" then
    ngx.sleep(fault.delay_ms / 1000)  -- then the normal answer (a client that leaves meanwhile: on_abort)
  end
  return false
end

-- Non-streaming answers a fault changes: cut under the full Content-Length, or malformed but clean.
local function answer_body(fault, rec)
  local kind = fault and fault.fault
  ngx.header["Content-Type"] = "application/json"
  if kind == "cut_stream" then
    local keep = math.min(#completion - 1, math.floor(#completion * fault.after_chunks / completion_tokens))
    ngx.header["Content-Length"] = #completion
    send(rec, completion:sub(1, keep))
    note(rec, "closed_by_mock", 200)
    return ngx.exit(ngx.ERROR)
  elseif kind == "truncated" then
    ngx.print(completion_of(math.min(fault.after_chunks, completion_tokens - 1)))
  elseif kind == "malformed" then
    local body = completion:sub(1, math.floor(#completion / 2))
    ngx.header["Content-Length"] = #body
    ngx.print(body)
  else
    ngx.print(completion)
  end
  finish(rec, 200)
end

function M.chat()
  local data = request_body()
  local req = data and cjson.decode(data)
  if type(req) ~= "table" then return answer_error("invalid_json") end
  local messages = req.messages
  if type(messages) ~= "table" or messages[1] == nil then return answer_error("missing_messages") end
  -- Requests a correctness probe names (model aigw-probe-*) are counted: did a cache keep one from us?
  local model = req.model
  if type(model) == "string" and model:sub(1, 11) == "aigw-probe-" then counts:incr(model, 1, 0) end

  local fault, rec
  if plan then
    fault, rec = attempt_of(req)
    if fault and answer_fault(fault, rec) then return end
  end
  if req.stream == true then return stream(fault, rec) end

  local p = S.profile
  if p.ttft_ms > 0 or p.per_token_ms > 0 then
    -- Non-streaming: the whole answer after the time the model would take to write it.
    local s = draw(p.ttft_ms) + completion_tokens * draw(p.per_token_ms)
    if s > 0 then ngx.sleep(s) end
  end
  if rec then return answer_body(fault, rec) end
  ngx.header["Content-Type"] = "application/json"
  ngx.print(completion)
end

-- GET /__aigw/count?model=NAME: how many requests naming that probe model reached the mock.
function M.count()
  ngx.header["Content-Type"] = "application/json"
  ngx.print(cjson.encode({ model = ngx.var.arg_model, count = counts:get(ngx.var.arg_model or "") or 0 }))
end

-- GET /__aigw/requests: every attempt recorded since the last reset, and how many records were lost.
function M.requests()
  if not plan then return answer_error("not_found") end
  local attempts = {}
  for _, key in ipairs(A:get_keys(0)) do
    if key:sub(1, 2) == "r:" then
      local rec = A:get(key)
      if rec then attempts[#attempts + 1] = cjson.decode(rec) end
    end
  end
  ngx.update_time()
  ngx.header["Content-Type"] = "application/json"
  ngx.print(cjson.encode({plan = plan.name, seed = plan.seed, since_s = ngx.now() - A:get("epoch"),
                          lost = A:get("lost") or 0, attempts = attempts}))
end

-- POST /__aigw/reset: a scenario starts: its clock (the plan's windows) and its counts from zero.
function M.reset()
  if not plan then return answer_error("not_found") end
  A:flush_all()
  A:flush_expired()
  ngx.update_time()
  A:set("epoch", ngx.now())
  ngx.header["Content-Type"] = "application/json"
  ngx.print('{"reset":true}')
end

function M.not_found()
  return answer_error("not_found")
end

return M
